"""`make bench`: speed of the gate and its parts beside the naive path, on this machine."""

"""Study-level decisions fitted on validation (python -m dernet study-fit): a layer above the export it reads."""

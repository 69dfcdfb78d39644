"""Training helpers shared by every trained model (ensemble members, torchvision detectors)."""

"""YOLO11 spine lesion detector: Ultralytics trainer with CLAHE, mosaic cutoff and focal loss (in progress)."""

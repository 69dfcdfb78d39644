"""DERNet: the classifier ensemble and the framework shared by the whole pipeline (imaging, datasets)."""

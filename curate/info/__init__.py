"""Info: counts per class x split, image sizes and modes, rejects, the class distribution plot."""

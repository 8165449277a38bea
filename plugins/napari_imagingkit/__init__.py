"""napari plugin for imagingkit: readers, widgets and sample data (thin over the library)."""

__version__ = "0.1.0"

"""harapp: recognise human activity (walking, running, sitting, standing) in still photos."""

__version__ = "0.1.0"

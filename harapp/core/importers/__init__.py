"""Bringing photos into a project: COCO files, folders, and the caption rules that label them."""

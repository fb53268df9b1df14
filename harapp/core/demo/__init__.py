"""The procedural demo dataset (posed stick figures with COCO-style captions) and the demo project.

Kept free of imports so that `harapp.core.demo.project` stays cheap: drawing needs PIL, opening does not.
"""

"""The pure core: decode -> window -> baseline -> score -> decide.

No I/O and no clock reads happen here; time is always passed in.
"""

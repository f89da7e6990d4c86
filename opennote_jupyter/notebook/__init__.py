"""The notebook layer: cell and line magics, the widget form and the video player.

Everything here parses user input, calls :class:`opennote_jupyter.client.OpennoteClient`
and displays what comes back. Modules import ipywidgets, pandas and the client only
when a magic or the form first runs, so ``%load_ext opennote_jupyter`` stays cheap.
"""

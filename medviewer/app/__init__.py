"""The application layer: Qt-free state and the workflows the GUI and the command line share.

Nothing here imports Qt, ``medviewer.gui`` or (at module level) torch. The GUI's panels
receive the :class:`~medviewer.app.session.Session` and subscribe to its events; the command
line calls the same workflows directly. See docs/architecture.md for the module table.
"""

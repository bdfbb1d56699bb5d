"""The image view's tool, display and export actions, and its right-click menu.

Actions live in ``ImageView.actions_by_name`` like the view's others, so the main window can
put them in its menus and tool bar; the right-click menu gathers the same actions (nothing
in it exists only there, except deleting the measurement under the pointer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu

from medviewer.errors import UserError
from medviewer.gui.view_tools import TOOLS

if TYPE_CHECKING:
    from medviewer.gui.view_host import ActionView

# Export (view_export.py) loads on first use.
EXPORT_FILTER = "PNG image (*.png);;JPEG image (*.jpg *.jpeg)"


def refresh_tooltip(action: QAction) -> None:
    """'What it does (keys)' from the action's keys now; unchanged text is not set again
    (setting it would announce a change and come back here)."""
    base = action.property("tip") or action.text().replace("&", "").rstrip(".…")
    keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText)
                     for k in action.shortcuts())
    tip = f"{base} ({keys})" if keys else base
    if action.toolTip() != tip:
        action.setToolTip(tip)


def build_tool_actions(view: ActionView) -> None:
    """One checkable action per tool (at most one checked), Escape for none, clearing."""
    group = QActionGroup(view)
    group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
    for tool in TOOLS.values():
        action = view._action(tool.action_name, tool.title, tool.key,
                              lambda on, name=tool.name: view._on_tool_toggled(name, on),
                              checkable=True, tip=tool.tip)
        group.addAction(action)
    view._action("no_tool", "&No tool (stop measuring)", "Escape", _stop_tool(view),
                 tip="Left drag goes back to the mouse mapping; a half-drawn shape is dropped")
    view._action("clear_measurements", "&Clear measurements", "Shift+Del",
                 view.clear_measurements, tip="Remove every measurement from this image")


def _stop_tool(view: ActionView):
    def stop() -> None:
        view.measures.cancel_drawing()
        view.set_tool(None)
    return stop


def build_display_actions(view: ActionView) -> None:
    a = view._action
    a("corner_text", "Corner &text", "T", view.set_corner_text_visible, checkable=True,
      tip="Show or hide the patient, study and view text in the image's corners")
    a("overlay_planes", "&Overlay planes", "Shift+O", view.set_overlay_planes_visible,
      checkable=True, tip="Show the graphics the file carries in its overlay planes")
    a("shutter", "Display &shutter", "", view.set_shutter_visible, checkable=True,
      tip="Hide what the file's display shutter hides")
    for name in ("corner_text", "overlay_planes", "shutter"):
        view.actions_by_name[name].setChecked(True)
    a("save_view", "&Save view as image…", "Ctrl+Shift+S", lambda: save_dialog(view, True),
      tip="Save what the view shows, with annotations, as PNG or JPEG")
    a("save_image", "Save image &without annotations…", "", lambda: save_dialog(view, False),
      tip="Save the image as shown (W/L, zoom) without text, measurements or overlays")
    a("copy_view", "Cop&y view", "Ctrl+Shift+C", lambda: copy(view, True),
      tip="Copy what the view shows, with annotations, to the clipboard")
    a("copy_image", "Copy image without annotations", "", lambda: copy(view, False))
    a("clear_calibration", "Forget the &calibration", "", view.clear_calibration,
      tip="Measure this image with the file's pixel spacing again")


def save_dialog(view: ActionView, annotations: bool) -> None:
    from medviewer.gui import view_export

    stem = view.instance.path.stem if view.instance is not None else "view"
    path, _ = QFileDialog.getSaveFileName(view, "Save view as image", f"{stem}.png",
                                          EXPORT_FILTER)
    if not path:
        return
    try:
        view_export.save_view(view, path, annotations)
    except UserError as exc:
        view.show_message(str(exc))


def copy(view: ActionView, annotations: bool) -> None:
    from medviewer.gui import view_export

    try:
        view_export.copy_view(view, annotations)
    except UserError as exc:
        view.show_message(str(exc))


def context_menu(view: ActionView, image_point: tuple[float, float] | None) -> QMenu:
    """Tools, W/L presets, what is shown, export and reset; the measurement under the
    pointer can be deleted."""
    actions = view.actions_by_name
    menu = QMenu(view)
    menu.setObjectName("imageContextMenu")
    near = view.measures.nearest(*image_point) if image_point is not None else None
    if near is not None:
        delete = menu.addAction(f"Delete this {near.record.title.lower()}")
        delete.setToolTip(near.summary())
        delete.setObjectName("deleteMeasurement")
        delete.triggered.connect(lambda _c=False, m=near: view.measures.remove(m))
        menu.addSeparator()
    tools = menu.addMenu("&Tools")
    tools.addActions(view.tool_actions())
    tools.addSeparator()
    tools.addAction(actions["no_tool"])
    tools.addAction(actions["clear_measurements"])
    if view.measures.is_calibrated:
        tools.addAction(actions["clear_calibration"])
    presets = menu.addMenu("&Window/level")
    presets.addActions(view.preset_actions())
    presets.setEnabled(bool(view.preset_actions()))
    show = menu.addMenu("&Show")
    for name in ("corner_text", "overlay_planes", "shutter", "invert"):
        show.addAction(actions[name])
    export = menu.addMenu("&Export")
    for name in ("save_view", "save_image", "copy_view", "copy_image"):
        export.addAction(actions[name])
    menu.addSeparator()
    menu.addAction(actions["fit"])
    menu.addAction(actions["reset_view"])
    return menu

"""One launch-form field: the input control for a form-model field, its label, help and server error.

The form model (``GET /flow/api/pipelines/<name>/versions/<v>/form``, built by
:func:`flow_jupyter.pipelines.schema.form_model`) gives every field a ``widget`` kind; each kind maps to one
ipywidgets control here. A field only sends a value the user set: an untouched field leaves the parameter to the
pipeline's own default, which is what Nextflow would use anyway, and keeps expression defaults such as
``${params.outdir}/pipeline_info`` Nextflow's to evaluate.
"""
from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..client.references import datafile_reference

UNSET: Any = object()
"""What :attr:`FormField.value` is when the user left the parameter to the pipeline."""

TEXT_KINDS = frozenset({"text", "directory", "uri"})
PICKER_KINDS = frozenset({"file", "path", "glob"})
"""Kinds whose value may be a Flow data file, chosen from a :class:`DataBrowser`."""

LABEL_WIDTH = "230px"
MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer a browser's number input holds exactly."""


def text_value(text: str) -> Any:
    """A text field's parameter value: nothing for an empty field, ``{"datafile": id}`` for a data-file reference."""
    text = text.strip()
    if not text:
        return UNSET
    return datafile_reference(text) or text


def datafile_text(datafile_id: int) -> str:
    return f"flow://datafile/{datafile_id}"


def shown_text(value: Any) -> str:
    """A parameter value as a text field shows it."""
    if value is None:
        return ""
    if isinstance(value, dict) and set(value) == {"datafile"}:
        return datafile_text(value["datafile"])
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


class FormField:
    """The widgets of one parameter; :attr:`box` is what the form lays out."""

    def __init__(self, model: dict[str, Any], *, browse: Callable[[FormField], widgets.Widget] | None = None):
        self.model = model
        self.name: str = model["name"]
        self.kind: str = model.get("widget") or "text"
        self.required: bool = bool(model.get("required"))
        self.hidden: bool = bool(model.get("hidden"))
        self.touched = False
        self._browse = browse
        self._choices: list[Any] = []
        help_line = model.get("help") or ""
        self.tooltip = (model.get("help_text") or help_line or "").strip()
        self.input = self._make_input(model)
        if self.tooltip:
            self.input.tooltip = self.tooltip[:500]
        self._initial = self.input.value
        self.input.observe(self._changed, names="value")
        marker = ' <span style="color:#dc3545" title="required">*</span>' if self.required else ""
        self.label = widgets.HTML(f'<b title="{html.escape(self.tooltip)}">{html.escape(self.name)}</b>{marker}',
                                  layout=widgets.Layout(width=LABEL_WIDTH, min_width=LABEL_WIDTH))
        self.help = widgets.HTML(self._help_html(help_line), layout=widgets.Layout(margin=f"0 0 0 {LABEL_WIDTH}"))
        self.error = widgets.HTML("", layout=widgets.Layout(margin=f"0 0 0 {LABEL_WIDTH}"))
        """The server's complaint about this parameter (empty when there is none)."""
        row = [self.label, self.input]
        self.browse_button: widgets.Button | None = None
        self.picker_area = widgets.Box()
        if self.kind_used in PICKER_KINDS and browse is not None:
            self.browse_button = widgets.Button(description="Data files…", icon="folder-open",
                                                tooltip="Choose a Flow data file",
                                                layout=widgets.Layout(width="auto"))
            self.browse_button.on_click(lambda _: self.toggle_picker())
            row.append(self.browse_button)
        self.box = widgets.VBox([widgets.HBox(row), self.help, self.error, self.picker_area])

    # --- building -------------------------------------------------------------------------------------------

    def _make_input(self, model: dict[str, Any]) -> widgets.ValueWidget:
        kind, default = self.kind, model.get("default")
        expression = bool(model.get("default_is_expression"))
        wide = widgets.Layout(width="420px")
        if kind == "checkbox" and isinstance(default, (bool, type(None))):
            self.kind_used = "checkbox"
            return widgets.Checkbox(value=bool(default), indent=False)
        if kind == "select" and model.get("choices"):
            self.kind_used = "select"
            return self._dropdown(model["choices"], default)
        if kind in ("integer", "number") and not expression:
            number = _number(default, integer=kind == "integer")
            if number is not None or default is None:
                self.kind_used = kind
                return self._number_input(kind, number, model)
        if kind in ("textarea", "json"):
            self.kind_used = kind
            return widgets.Textarea(value=shown_text(default), layout=widgets.Layout(width="420px", height="80px"))
        self.kind_used = kind if kind in TEXT_KINDS | PICKER_KINDS else "text"
        placeholder = {"file": "path or flow://datafile/<id>", "path": "path or flow://datafile/<id>",
                       "glob": "glob pattern", "directory": "directory", "uri": "https://…"}.get(kind, "")
        return widgets.Text(value=shown_text(default), placeholder=placeholder, layout=wide,
                            continuous_update=False)

    def _dropdown(self, choices: list[Any], default: Any) -> widgets.Dropdown:
        """Options by index, so choices of any JSON type (and a default the enum forgot) keep their exact value."""
        values = list(choices)
        if default is not None and default not in values:
            values.insert(0, default)  # the schema contradicts itself (nf-core/eager): keep the pipeline's default
        labels = [shown_text(v) for v in values]
        if default is None:
            values.insert(0, UNSET)
            labels.insert(0, "(not set)")
        self._choices = values
        labels = _unique_labels(labels)
        index = values.index(default) if default is not None else 0
        return widgets.Dropdown(options=labels, index=index)

    def _number_input(self, kind: str, number: float | int | None, model: dict[str, Any]) -> widgets.ValueWidget:
        integer = kind == "integer"
        low = _number(model.get("minimum", model.get("exclusive_minimum")), integer=integer)
        high = _number(model.get("maximum", model.get("exclusive_maximum")), integer=integer)
        start = number if number is not None else (low if low is not None else 0)
        limit = MAX_SAFE_INTEGER if integer else 1e308
        bounded = (low is not None or high is not None) and \
            (low is None or start >= low) and (high is None or start <= high)
        layout = widgets.Layout(width="200px")
        if integer:
            if bounded:
                return widgets.BoundedIntText(value=start, min=low if low is not None else -limit,
                                              max=high if high is not None else limit, layout=layout)
            return widgets.IntText(value=start, layout=layout)
        if bounded:
            return widgets.BoundedFloatText(value=start, min=low if low is not None else -limit,
                                            max=high if high is not None else limit, layout=layout)
        return widgets.FloatText(value=start, layout=layout)

    def _help_html(self, help_line: str) -> str:
        if not help_line:
            return ""
        return f'<small style="color:#6c757d">{html.escape(help_line)}</small>'

    # --- values ---------------------------------------------------------------------------------------------

    def _changed(self, change: dict[str, Any]) -> None:
        self.touched = change["new"] != self._initial
        self.clear_error()

    @property
    def value(self) -> Any:
        """The parameter as sent to the server, or :data:`UNSET` to leave it to the pipeline."""
        if not self.touched:
            return UNSET
        if self.kind_used == "select":
            return self._choices[self.input.index] if self.input.index is not None else UNSET
        if self.kind_used == "json":
            try:
                return json.loads(self.input.value) if self.input.value.strip() else UNSET
            except ValueError:
                return self.input.value  # the server names the field that is not valid
        if isinstance(self.input, (widgets.Text, widgets.Textarea)):
            return text_value(self.input.value)
        return self.input.value

    def set_value(self, value: Any) -> None:
        """Show ``value`` (e.g. from a previous run) and send it at launch, even if it equals the default.
        A DataFile (anything with ``reference()``) becomes its ``{"datafile": id}``."""
        reference = getattr(value, "reference", None)
        if callable(reference):
            value = reference()
        if self.kind_used == "select":
            if value not in self._choices:
                self._choices.append(value)
                self.input.options = _unique_labels([*self.input.options, shown_text(value)])
            self.input.index = self._choices.index(value)
        elif isinstance(self.input, (widgets.Text, widgets.Textarea)):
            self.input.value = shown_text(value)
        else:
            self.input.value = value
        self.touched = True

    def reset(self) -> None:
        self.input.value = self._initial
        self.touched = False

    # --- errors and the data-file picker --------------------------------------------------------------------

    def show_error(self, message: str) -> None:
        self.error.value = f'<span style="color:#dc3545">⚠ {html.escape(message)}</span>'

    def clear_error(self) -> None:
        if self.error.value:
            self.error.value = ""

    @property
    def error_message(self) -> str:
        """The error text as shown, for tests and scripts."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.error.value)).removeprefix("⚠ ")

    def toggle_picker(self) -> None:
        if self.picker_area.children:
            self.picker_area.children = ()
        elif self._browse is not None:
            self.picker_area.children = (self._browse(self),)

    def choose_datafile(self, datafile_id: int) -> None:
        self.set_value({"datafile": datafile_id})
        self.picker_area.children = ()


def _number(value: Any, *, integer: bool) -> int | float | None:
    """A numeric default (or bound) as the input needs it; None if it is not a finite number of that kind."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value) if not isinstance(value, (int, float)) else value
    except (TypeError, ValueError):
        return None
    if isinstance(number, float) and not math.isfinite(number):
        return None
    if integer:
        if isinstance(number, float) and not number.is_integer():
            return None
        return int(number) if abs(number) <= MAX_SAFE_INTEGER else None
    return float(number)


def _unique_labels(labels: list[str]) -> list[str]:
    """Dropdown labels must differ: `1` and `"1"` in one enum show as `1` and `1 (2)`."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out

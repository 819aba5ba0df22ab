"""PipelineLauncher: the launch form of a pipeline version, built from the server's form model.

The server owns the parameters: the form model (``GET …/versions/<v>/form``) says which fields exist and how to
show them, and Launch first asks the server to validate (``POST …/validate``) and puts each error it returns next
to its field (an error's ``field`` is a JSON pointer, ``/min_quality`` → the ``min_quality`` field). Only a
valid set of params is launched; the launched run is shown in an :class:`ExecutionMonitor` underneath.
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from .browser import DataBrowser
from .common import error_html, is_connection_problem, note_html, offer_projects, resolve_client, try_or_show
from .fields import UNSET, FormField
from .monitor import ExecutionMonitor

DEFAULT_BACKEND = ""
"""The backend option that leaves the choice to the server's ``FlowSettings.executor``."""
ADVANCED_TITLE = "Advanced"


def field_of_pointer(pointer: str | None) -> str | None:
    """``/min_quality`` (or ``/samples/0``) → ``min_quality``; None for the whole object."""
    if not pointer or not pointer.startswith("/"):
        return None
    first = pointer[1:].split("/", 1)[0]
    return first.replace("~1", "/").replace("~0", "~") or None


class PipelineLauncher(widgets.VBox):
    """A form per pipeline version; :meth:`launch` validates on the server, launches, and shows the monitor."""

    def __init__(self, pipeline: Any = None, version: str | None = None, *, client: Any = None,
                 project: Any = None, backend: str | None = None, params: dict[str, Any] | None = None,
                 form: dict[str, Any] | None = None, **kwargs: Any):
        """``form`` is a form model already at hand (the server's answer, or just its ``form`` part); without it
        the form of ``pipeline`` at ``version`` (default: the pipeline's latest) is fetched."""
        super().__init__(**kwargs)
        self.client = resolve_client(client)
        self.fields: dict[str, FormField] = {}
        """Every parameter's field, by parameter name."""
        self.model: dict[str, Any] = {}
        self.execution: Any = None
        """The last execution launched from this form."""
        self._pipeline_obj: Any = None
        self._loading = False

        self.pipeline_picker = widgets.Dropdown(description="Pipeline", options=[])
        self.version_picker = widgets.Dropdown(description="Version", options=[])
        self.project_picker = widgets.Dropdown(description="Project", options=[])
        self.backend_picker = widgets.Dropdown(
            description="Backend", value=DEFAULT_BACKEND,
            options=[("server default", DEFAULT_BACKEND), ("local", "local"), ("Slurm", "slurm")])
        self.project_error = widgets.HTML()
        self.backend_error = widgets.HTML()
        self.intro = widgets.HTML()
        self.sections = widgets.VBox()
        """One box per visible group of fields."""
        self.advanced = widgets.Accordion(children=[], selected_index=None)
        """The hidden (advanced) parameters, folded away."""
        self.validate_button = widgets.Button(description="Check", icon="check",
                                              tooltip="Ask the server to validate these parameters")
        self.launch_button = widgets.Button(description="Launch", icon="rocket", button_style="success")
        self.message = widgets.HTML()
        self.result = widgets.VBox()
        """Where the launched run's monitor appears."""
        self.children = [
            widgets.HBox([self.pipeline_picker, self.version_picker]),
            widgets.HBox([self.project_picker, self.project_error]),
            widgets.HBox([self.backend_picker, self.backend_error]),
            self.intro, self.sections, self.advanced,
            widgets.HBox([self.validate_button, self.launch_button]),
            self.message, self.result,
        ]
        self.pipeline_picker.observe(self._pipeline_changed, names="value")
        self.version_picker.observe(self._version_changed, names="value")
        self.validate_button.on_click(lambda _: try_or_show(self.validate, self.message))
        self.launch_button.on_click(lambda _: try_or_show(self.launch, self.message))
        if backend:
            self.backend_picker.value = backend

        self._load_projects(project)
        self._loading = True
        try:
            self._load_pipelines(pipeline, version)
        finally:
            self._loading = False
        if form is not None:
            self.build(form.get("form", form) if "groups" not in form else form)
        elif self.pipeline_picker.value:
            self._load_form()
        if params:
            self.set_params(params)

    # --- choices from the server ----------------------------------------------------------------------------

    def _load_projects(self, project: Any) -> None:
        offer_projects(self.client, self.project_picker, self.project_error, project,
                       none_yet="You have no project yet: create one to launch into.")

    def _load_pipelines(self, pipeline: Any, version: str | None) -> None:
        name = getattr(pipeline, "name", pipeline)
        names = [p.name for p in try_or_show(self.client.pipelines, self.message) or []]
        if name and name not in names:
            names.append(name)  # a form given directly may be for a pipeline this server does not know
        self.pipeline_picker.options = names
        self.pipeline_picker.value = name or (names[0] if names else None)
        self._load_versions(version)

    def _load_versions(self, version: str | None = None) -> None:
        name = self.pipeline_picker.value
        refs: list[str] = []
        self._pipeline_obj = None
        if name:
            try:
                self._pipeline_obj = self.client.pipeline(name)
                refs = [_ref(v) for v in (self._pipeline_obj.versions or [])]
            except Exception as error:
                if not is_connection_problem(error):
                    raise
                if getattr(error, "status", None) != 404:
                    self.message.value = error_html(error)
        if version and version not in refs:
            refs.append(version)
        self.version_picker.options = [("latest", "latest")] + [(r, r) for r in reversed(refs)] \
            if refs else [("latest", "latest")]
        self.version_picker.value = version if version else "latest"

    def _pipeline_changed(self, _: Any) -> None:
        if self._loading:
            return
        self._loading = True
        try:
            self._load_versions()
        finally:
            self._loading = False
        self._load_form()

    def _version_changed(self, _: Any) -> None:
        if not self._loading:
            self._load_form()

    def _load_form(self) -> None:
        answer = try_or_show(lambda: self._pipeline().form(self.version), self.message)
        if answer is None:
            return
        self.build(answer.get("form", answer) if "groups" not in answer else answer)

    def _pipeline(self) -> Any:
        if self._pipeline_obj is None:
            self._pipeline_obj = self.client.pipeline(self.pipeline_picker.value)
        return self._pipeline_obj

    @property
    def pipeline(self) -> str | None:
        return self.pipeline_picker.value

    @property
    def version(self) -> str | None:
        """The chosen version ref; None for the pipeline's latest."""
        value = self.version_picker.value
        return None if value in (None, "latest") else value

    @property
    def project(self) -> Any:
        return self.project_picker.value

    @property
    def backend(self) -> str | None:
        return self.backend_picker.value or None

    # --- the form -------------------------------------------------------------------------------------------

    def build(self, model: dict[str, Any]) -> None:
        """Lay out the form of a form model: visible groups in order, hidden fields under "Advanced"."""
        self.model = model
        self.fields = {}
        sections, hidden = [], []
        for group in model.get("groups") or []:
            shown: list[Any] = []
            folded: list[Any] = []
            for field_model in group.get("fields") or []:
                field = FormField(field_model, browse=self._file_picker)
                self.fields[field.name] = field
                (folded if field.hidden else shown).append(field.box)
            heading = self._group_heading(group)
            if shown:
                sections.append(widgets.VBox([heading, *shown]))
            if folded:
                hidden.append(widgets.VBox([heading, *folded]))
        self.sections.children = sections
        self.advanced.children = [widgets.VBox(hidden)] if hidden else []
        if hidden:
            self.advanced.set_title(0, f"{ADVANCED_TITLE} ({sum(1 for f in self.fields.values() if f.hidden)} "
                                       "hidden parameters)")
        self.advanced.selected_index = None
        title = model.get("title") or self.pipeline or ""
        intro = [f"<h3>{html.escape(title)}</h3>"] if title else []
        if model.get("description"):
            intro.append(f"<p>{html.escape(model['description'])}</p>")
        if model.get("note"):
            intro.append(note_html(model["note"]))
        intro.append(note_html("Fields marked * are required. Data files: “Data files…” or flow://datafile/<id>."))
        self.intro.value = "".join(intro)
        self.message.value = ""

    @staticmethod
    def _group_heading(group: dict[str, Any]) -> widgets.HTML:
        text = f"<h4 style='margin-bottom:2px'>{html.escape(group.get('title') or group.get('id') or '')}</h4>"
        if group.get("description"):
            text += note_html(group["description"])
        return widgets.HTML(text)

    @property
    def visible_fields(self) -> list[str]:
        return [name for name, field in self.fields.items() if not field.hidden]

    @property
    def hidden_fields(self) -> list[str]:
        return [name for name, field in self.fields.items() if field.hidden]

    def params(self) -> dict[str, Any]:
        """The parameters the user set (untouched fields are left to the pipeline's defaults)."""
        return {name: field.value for name, field in self.fields.items() if field.value is not UNSET}

    def set_params(self, params: dict[str, Any]) -> None:
        """Fill fields (e.g. from an earlier run); a name the form lacks is shown as an error, never dropped."""
        unknown = []
        for name, value in params.items():
            if name in self.fields:
                self.fields[name].set_value(value)
            else:
                unknown.append(name)
        if unknown:
            self.message.value = error_html(f"This form has no parameter {', '.join(map(repr, unknown))}.")

    def _file_picker(self, field: FormField) -> widgets.Widget:
        """A single-file DataBrowser (on the chosen project) and a button that puts the choice in ``field``."""
        browser = DataBrowser(self.client, project=self.project or None, multiple=False, page_size=20)
        use = widgets.Button(description="Use this file", icon="check", button_style="primary")

        def chosen(_: Any) -> None:
            picked = browser.selected
            if picked:
                field.choose_datafile(picked[0].id)

        use.on_click(chosen)
        return widgets.VBox([browser, use], layout=widgets.Layout(border="1px solid #ddd", padding="4px"))

    # --- validation and launch ------------------------------------------------------------------------------

    def clear_errors(self) -> None:
        for field in self.fields.values():
            field.clear_error()
        self.project_error.value = self.backend_error.value = self.message.value = ""

    def show_errors(self, errors: list[dict[str, Any]]) -> None:
        """Each server error next to its field; errors for no field of this form go to the message line."""
        loose = []
        for error in errors:
            pointer = error.get("field")
            name = field_of_pointer(pointer)
            text = error.get("message") or error.get("reason") or "not valid"
            if name in self.fields:
                field = self.fields[name]
                previous = field.error_message
                field.show_error(f"{previous}; {text}" if previous else text)
                if field.hidden:
                    self.advanced.selected_index = 0
            elif pointer == "/project":
                self.project_error.value = error_html(text)
            elif pointer == "/backend":
                self.backend_error.value = error_html(text)
            else:
                loose.append(f"{pointer or 'params'}: {text}" if pointer else text)
        summary = f"{len(errors)} problem(s): see the fields marked ⚠."
        self.message.value = error_html(" · ".join([summary, *loose]) if loose else summary)

    def validate(self) -> list[dict[str, Any]]:
        """Ask the server whether the params are valid; show and return its errors (empty when valid)."""
        self.clear_errors()
        errors = self._pipeline().validate(self.params(), version=self.version)
        if errors:
            self.show_errors(errors)
        else:
            self.message.value = note_html("The server accepts these parameters.")
        return errors

    def launch(self) -> Any:
        """Validate on the server, then launch and show the run's monitor; returns the Execution (None if the
        server refused: its errors are shown at their fields)."""
        if self.validate():
            return None
        if self.project is None:
            self.project_error.value = error_html("Choose a project to launch into.")
            return None
        self.launch_button.disabled = True
        try:
            execution = self.client.launch(self.pipeline, params=self.params(), project=self.project,
                                           version=self.version, backend=self.backend)
        except Exception as error:
            if not is_connection_problem(error):
                raise
            errors = getattr(error, "errors", None) or \
                [{"field": getattr(error, "field", None), "message": getattr(error, "message", str(error))}]
            self.show_errors(errors)
            return None
        finally:
            self.launch_button.disabled = False
        self.execution = execution
        self.message.value = note_html(f"Launched execution {execution.id}.")
        self.result.children = [ExecutionMonitor(execution, client=self.client)]
        return execution

    @property
    def monitor(self) -> ExecutionMonitor | None:
        return self.result.children[0] if self.result.children else None


def _ref(version: Any) -> str:
    # a version's JSON always names its ref (Pipeline.from_json reads it the same way)
    return version["ref"] if isinstance(version, dict) else getattr(version, "ref", str(version))

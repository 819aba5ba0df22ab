"""DataBrowser: page through the data files you may see, filter them, and pick some.

The server does the filtering and the paging (keyset cursors, so page 500 costs what page 1 costs); the widget keeps
the cursor of every page it has shown so "Previous" needs no offset. Only files the server lists can be selected,
so whatever is picked here is something the user may read.
"""
from __future__ import annotations

from typing import Any

import ipywidgets as widgets
from traitlets import Bool, Int

from .common import error_html, human_size, is_connection_problem, note_html, resolve_client, try_or_show

ALL = 0
"""The "any project" / "any sample" option (real ids start at 1)."""


class DataBrowser(widgets.VBox):
    """Data files by project, sample and name prefix, a page at a time; :attr:`selected` are the chosen DataFiles."""

    page_size = Int(25, help="Files per page (the server caps a page at 1000).")
    multiple = Bool(True, help="Whether several files may be selected at once (False for a single-file picker).")

    def __init__(self, client: Any = None, *, project: Any = None, sample: Any = None, name: str = "",
                 page_size: int | None = None, multiple: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.client = resolve_client(client)
        if page_size is not None:
            self.page_size = page_size
        self.multiple = multiple
        self.files: list[Any] = []
        """The DataFiles on the page shown."""
        self.page_number = 0
        self._cursors: list[str | None] = [None]  # cursor of page k is _cursors[k]
        self._next: str | None = None
        self._quiet = False  # set while filters change together, so they fetch once

        self.project_picker = widgets.Dropdown(description="Project", options=[("All projects", ALL)], value=ALL)
        self.sample_picker = widgets.Dropdown(description="Sample", options=[("All samples", ALL)], value=ALL,
                                              disabled=True)
        self.name_filter = widgets.Text(description="Name", placeholder="starts with…", continuous_update=False)
        self.refresh_button = widgets.Button(icon="refresh", tooltip="Reload this page",
                                             layout=widgets.Layout(width="40px"))
        self.previous_button = widgets.Button(description="Previous", icon="chevron-left", disabled=True)
        self.next_button = widgets.Button(description="Next", icon="chevron-right", disabled=True)
        self.page_label = widgets.HTML()
        select = widgets.SelectMultiple if multiple else widgets.Select
        self.listing = select(options=[], rows=min(self.page_size, 12), layout=widgets.Layout(width="100%"))
        self.message = widgets.HTML()
        self.children = [
            widgets.HBox([self.project_picker, self.sample_picker, self.name_filter, self.refresh_button]),
            self.listing,
            widgets.HBox([self.previous_button, self.next_button, self.page_label]),
            self.message,
        ]
        self.project_picker.observe(self._project_changed, names="value")
        self.sample_picker.observe(lambda _: self._filters_changed(), names="value")
        self.name_filter.observe(lambda _: self._filters_changed(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.next_button.on_click(lambda _: self.next_page())
        self.previous_button.on_click(lambda _: self.previous_page())

        self._quiet = True
        try:
            self.load_projects()
            if project is not None:
                self.project_picker.value = self._project_id(project)
            if sample is not None:
                self.sample_picker.value = self._sample_id(sample)
            self.name_filter.value = name
        finally:
            self._quiet = False
        self.refresh()

    # --- filters --------------------------------------------------------------------------------------------

    def load_projects(self) -> None:
        """Fill the project picker with the projects the server shows this user."""
        projects = try_or_show(self.client.projects, self.message)
        if projects is None:
            return
        current = self.project_picker.value
        self.project_picker.options = [("All projects", ALL)] + [(p.name, p.id) for p in projects]
        self.project_picker.value = current if current in {p.id for p in projects} else ALL

    def set_filters(self, *, project: Any = None, sample: Any = None, name: str | None = None) -> None:
        """Change several filters and fetch once (``project``/``sample`` by id, name or object; 0 = all)."""
        self._quiet = True
        try:
            if project is not None:
                self.project_picker.value = self._project_id(project)
            if sample is not None:
                self.sample_picker.value = self._sample_id(sample)
            if name is not None:
                self.name_filter.value = name
        finally:
            self._quiet = False
        self._filters_changed()

    def _project_id(self, project: Any) -> int:
        return _option_value(self.project_picker, project, f"No project {project!r} among those you can see.")

    def _sample_id(self, sample: Any) -> int:
        return _option_value(self.sample_picker, sample, f"No sample {sample!r} in this project.")

    def _project_changed(self, change: dict[str, Any]) -> None:
        project = change["new"]
        options = [("All samples", ALL)]
        if project != ALL:
            try:
                options += [(s.name, s.id) for s in self.client.samples(project)]
            except Exception as error:
                if not is_connection_problem(error):
                    raise
                self.message.value = error_html(error)
        quiet, self._quiet = self._quiet, True
        try:
            self.sample_picker.options = options
            self.sample_picker.value = ALL
            self.sample_picker.disabled = project == ALL
        finally:
            self._quiet = quiet
        self._filters_changed()

    def _filters_changed(self) -> None:
        if self._quiet:
            return
        self._cursors, self.page_number = [None], 0
        self.refresh()

    @property
    def filters(self) -> dict[str, Any]:
        """The filters as the client's ``files()`` takes them."""
        return {"project": self.project_picker.value or None, "sample": self.sample_picker.value or None,
                "name": self.name_filter.value.strip() or None}

    # --- paging ---------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Fetch the page shown again (e.g. after an upload)."""
        page = try_or_show(lambda: self.client.files(**self.filters, limit=self.page_size,
                                                     after=self._cursors[self.page_number]), self.message)
        if page is None:
            return
        self.files = list(page)
        self._next = getattr(page, "next", None)
        del self._cursors[self.page_number + 1:]
        if self._next:
            self._cursors.append(self._next)
        self.listing.options = [(self._label(f), index) for index, f in enumerate(self.files)]
        self.previous_button.disabled = self.page_number == 0
        self.next_button.disabled = not self._next
        shown = (f"files {self.page_number * self.page_size + 1}–{self.page_number * self.page_size + len(self.files)}"
                 if self.files else "no files")
        self.page_label.value = note_html(f"page {self.page_number + 1} · {shown}")
        self.message.value = "" if self.files or self.page_number else note_html("No data files match.")

    def next_page(self) -> None:
        if self._next:
            self.page_number += 1
            self.refresh()

    def previous_page(self) -> None:
        if self.page_number > 0:
            self.page_number -= 1
            self.refresh()

    @property
    def has_next(self) -> bool:
        return bool(self._next)

    # --- selection ------------------------------------------------------------------------------------------

    @property
    def selected(self) -> list[Any]:
        """The selected DataFiles of the page shown."""
        value = self.listing.value
        indexes = value if isinstance(value, tuple) else (() if value is None else (value,))
        return [self.files[i] for i in indexes]

    def select(self, *datafiles: Any) -> None:
        """Select files of the page shown, by DataFile, id or file name."""
        wanted = {getattr(d, "id", d) for d in datafiles}
        indexes = tuple(i for i, f in enumerate(self.files) if f.id in wanted or f.filename in wanted)
        if self.multiple:
            self.listing.value = indexes
        else:
            self.listing.value = indexes[0] if indexes else None

    @staticmethod
    def _label(datafile: Any) -> str:
        parts = [datafile.filename, human_size(getattr(datafile, "size", None)), getattr(datafile, "type", "") or ""]
        origin = getattr(datafile, "origin", None)
        if origin and origin != "upload":
            parts.append(origin)
        return " · ".join(p for p in parts if p) + f"  [#{datafile.id}]"


def _option_value(picker: Any, item: Any, missing: str) -> int:
    """The picker's value for ``item`` (an object, an id or a label; ``ALL``/None: all); ValueError ``missing``
    when it offers no such item."""
    if item in (ALL, None):
        return ALL
    ident = getattr(item, "id", item)
    for label, value in picker.options:
        if value == ident or label == ident or str(value) == str(ident):
            return value
    raise ValueError(missing)

"""A data table that is redrawn every second without losing the user's place, and sorts by any column.

Rows are keyed (a pid, a route): ``sync`` updates the rows that stayed, adds the new ones, drops the gone
ones, sorts, and puts the cursor back on the row it was on -- so a table that refreshes each second still
lets you select a worker and act on it.  Cells are ``Cell``s: plain ``rich.text.Text`` (``DataTable``
would read a ``str`` as markup, and these strings come from the server) that also carry the value they
sort by, so "RSS" sorts by bytes and not by the text "12.4 MiB".

Sorting is by keyboard (``cycle_sort`` / ``reverse_sort``, bound by the screen) or by clicking a header.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from qactuar_tui.text import clean, clip

SortValue = float | str


class Cell(Text):
    """Plain text shown in a table, with the value it sorts by (None sorts last)."""

    __slots__ = ("order",)

    def __init__(self, text: str, order: SortValue | None = None, style: str = "") -> None:
        super().__init__(text, style=style, no_wrap=True, end="")
        self.order = order


def cell(value: object, order: SortValue | None = None, *, style: str = "", width: int = 60) -> Cell:
    """A cell showing ``value`` cleaned of control characters and cut to ``width``; it sorts by
    ``order``, or by ``value`` itself when that is a number or a string."""
    if order is None and isinstance(value, int | float | str):
        order = value
    return Cell(clip(clean(str(value)), width), order, style)


def _sort_key(item: object) -> tuple[bool, SortValue]:
    order = item.order if isinstance(item, Cell) else None
    return (order is None, 0 if order is None else order)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str


class LiveTable(DataTable[Text]):
    """A row-cursor table fed whole by ``sync(rows)``; sorted by one column, either way."""

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        sort_by: str | None = None,
        reverse: bool = False,
        id: str | None = None,
    ) -> None:
        """Args:
        columns: The columns, left to right.
        sort_by: The column key to sort by at first; None keeps the order ``sync`` is given.
        reverse: Sort descending at first.
        id: The widget id.
        """
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._columns = tuple(columns)
        self._sort_by = sort_by
        self._reverse = reverse
        self._keys: dict[str, ColumnKey] = {}

    def on_mount(self) -> None:
        for column in self._columns:  # two spaces saved for the sort arrow, so the width never changes
            self._keys[column.key] = self.add_column(column.label + "  ", key=column.key)
        self._label_columns()

    @property
    def selected(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return None if key is None else str(key)

    def sync(self, rows: Iterable[tuple[str, Sequence[Cell]]]) -> None:
        """Show exactly ``rows`` (key, cells), keeping the cursor on the same key."""
        selected = self.selected
        fresh = dict(rows)
        for row_key in list(self.rows):
            if row_key.value not in fresh:
                self.remove_row(row_key)
        for key, cells in fresh.items():
            if key in self.rows:
                for column, value in zip(self._columns, cells, strict=True):
                    self.update_cell(key, column.key, value)
            else:
                self.add_row(*cells, key=key)
        self._sort()
        if selected is not None and selected in self.rows:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def cycle_sort(self) -> None:
        """Sort by the next column (after the last: by the first)."""
        keys = [column.key for column in self._columns]
        index = keys.index(self._sort_by) + 1 if self._sort_by in keys else 0
        self.sort_column(keys[index % len(keys)], reverse=self._reverse)

    def reverse_sort(self) -> None:
        """Flip the sort order."""
        self.sort_column(self._sort_by or self._columns[0].key, reverse=not self._reverse)

    def sort_column(self, key: str, *, reverse: bool) -> None:
        """Sort by the column ``key``."""
        selected = self.selected
        self._sort_by, self._reverse = key, reverse
        self._label_columns()
        self._sort()
        if selected is not None:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a header sorts by it; a second click reverses."""
        event.stop()
        key = str(event.column_key.value)
        self.sort_column(key, reverse=not self._reverse if key == self._sort_by else False)

    def _sort(self) -> None:
        if self._sort_by is not None and self.row_count:
            self.sort(self._sort_by, key=_sort_key, reverse=self._reverse)

    def _label_columns(self) -> None:
        for column in self._columns:
            arrow = (" ▼" if self._reverse else " ▲") if column.key == self._sort_by else ""
            self.columns[self._keys[column.key]].label = Text(column.label + (arrow or "  "))
        self.refresh()

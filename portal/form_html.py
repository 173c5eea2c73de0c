"""Fields written out as WTForms' own widgets write them, at a fraction of the cost.

A staff referral page carries eight forms, and WTForms' widgets were a tenth of its
time: each builds its attributes through `markupsafe.Markup.format`, and reads its
validators' flags through `dir()`. `write_field` produces the same markup, byte for
byte (tests/unit/test_form_html.py renders every form of the portal both ways), for the
widgets the portal uses with their stock behaviour. Any other widget, and any field
that asks for something this does not know (a datalist, option groups, a subclass
overriding how it renders), is written by its own widget.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape
from wtforms.fields import Field
from wtforms.widgets import (
    CheckboxInput,
    DateInput,
    DateTimeLocalInput,
    EmailInput,
    HiddenInput,
    Input,
    NumberInput,
    PasswordInput,
    RadioInput,
    Select,
    TelInput,
    TextArea,
    TextInput,
    TimeInput,
    URLInput,
)
from wtforms.widgets.core import clean_key

# Widgets whose whole behaviour is Input's: an id, a type, a value and the flags.
_PLAIN_INPUTS = (TextInput, EmailInput, TelInput, URLInput, HiddenInput)
# Date and time inputs also turn date `min`/`max` flags into text; the portal's fields
# declare none (their bounds are checked on the server), so without them they are plain.
_DATE_INPUTS = (DateInput, TimeInput, DateTimeLocalInput)
_CHECKED_INPUTS = (CheckboxInput, RadioInput)
# A number input's own step, min and max (DecimalField's is step="any") come first.
_NUMBER_LIMITS = ("step", "min", "max")


def attributes(items: dict[str, Any]) -> str:
    """WTForms' `html_params`: sorted by name, `True` bare, `False` left out, names and
    values escaped, a double quote in a (trusted) Markup value spelled `&quot;`."""
    written = []
    for key, value in sorted(items.items()):
        key = clean_key(key)
        if value is True:
            written.append(str(escape(key)))
        elif value is not False:
            text = str(escape(value)).replace('"', "&quot;")
            written.append(f'{escape(key)}="{text}"')
    return " ".join(written)


def _with_flags(field: Field, kwargs: dict, names: list[str], *, call: bool) -> dict:
    # Validators set their flags on the instance: what `dir()` finds beyond them is
    # dunder names, which no widget's `validation_attrs` holds.
    for name, value in vars(field.flags).items():
        if name in names and name not in kwargs:
            kwargs[name] = value() if call and callable(value) else value
    return kwargs


def _input(widget: Input, field: Field, kwargs: dict) -> Markup | None:
    if getattr(field, "_datalist", None) is not None:
        return None
    if isinstance(widget, _DATE_INPUTS) and (
        "min" in kwargs or "max" in kwargs or field.flags.min or field.flags.max
    ):
        return None
    if isinstance(widget, PasswordInput) and widget.hide_value:
        kwargs["value"] = ""
    if isinstance(widget, NumberInput):
        for name in _NUMBER_LIMITS:
            if getattr(widget, name) is not None:
                kwargs.setdefault(name, getattr(widget, name))
    if isinstance(widget, _CHECKED_INPUTS) and getattr(field, "checked", field.data):
        kwargs.setdefault("checked", True)
    kwargs.setdefault("id", field.id)
    kwargs.setdefault("type", widget.input_type)
    if "value" not in kwargs:
        kwargs["value"] = field._value()
    _with_flags(field, kwargs, widget.validation_attrs, call=True)
    params = attributes({"name": field.name, **kwargs})
    return Markup(f"<input {params}>")  # noqa: S704 - every value escaped


def _textarea(widget: TextArea, field: Field, kwargs: dict) -> Markup:
    kwargs.setdefault("id", field.id)
    _with_flags(field, kwargs, widget.validation_attrs, call=False)
    params = attributes({"name": field.name, **kwargs})
    text = escape(field._value())
    return Markup(f"<textarea {params}>\r\n{text}</textarea>")  # noqa: S704 - escaped


def _select(widget: Select, field: Field, kwargs: dict) -> Markup | None:
    if not hasattr(field, "has_groups") or field.has_groups():
        return None
    kwargs.setdefault("id", field.id)
    if widget.multiple:
        kwargs["multiple"] = True
    _with_flags(field, kwargs, widget.validation_attrs, call=False)
    html = [f"<select {attributes({'name': field.name, **kwargs})}>"]
    for choice in field._iter_choices_normalized():
        value = str(choice.value) if isinstance(choice.value, bool) else choice.value
        option = {"value": value, **(choice.render_kw or {})}
        if choice.selected:
            option["selected"] = True
        label = escape(choice.label or choice.value)
        html.append(f"<option {attributes(option)}>{label}</option>")
    html.append("</select>")
    return Markup("".join(html))  # noqa: S704 - every value and label escaped


# Exactly these classes: a subclass may render differently, so it renders itself.
_WRITERS = {
    **{
        kind: _input
        for kind in (*_PLAIN_INPUTS, *_DATE_INPUTS, *_CHECKED_INPUTS, NumberInput, PasswordInput)
    },
    TextArea: _textarea,
    Select: _select,
}


def write_field(field: Field, render_kw: dict[str, Any]) -> Markup:
    """`field` as HTML, with `render_kw` (the caller's attributes, over the field's own
    `render_kw`): what WTForms' DefaultMeta.render_field returns."""
    kwargs = {clean_key(k): v for k, v in render_kw.items()}
    if getattr(field, "render_kw", None) is not None:
        kwargs = {**{clean_key(k): v for k, v in field.render_kw.items()}, **kwargs}
    writer = _WRITERS.get(type(field.widget))
    written = writer(field.widget, field, dict(kwargs)) if writer else None
    return written if written is not None else field.widget(field, **kwargs)

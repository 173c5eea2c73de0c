"""Every field of every form is written exactly as WTForms' own widgets write it.

portal/form_html.py writes fields faster than WTForms does; these tests hold it to the
same bytes, for each form of the portal blank, filled with awkward values, with errors
and with the attributes our macros pass, and for widget options no form uses yet.
"""

from __future__ import annotations

import calendar

import pytest
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    DateField,
    Form,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.meta import DefaultMeta
from wtforms.validators import DataRequired, Length, NumberRange
from wtforms.widgets import NumberInput, PasswordInput, Select, TextInput

from portal import create_app
from portal.admin.forms import BusinessHoursForm, business_hours_form_class
from portal.config import TestConfig
from portal.form_html import attributes, write_field
from tests.unit.test_form_bounds import all_form_classes

AWKWARD = 'Ann "Nan" <O\'Neil> & Søn\r\nsecond line'
# What the form macros (and a few templates) pass when they render a field.
CALLER_ATTRIBUTES = [
    {},
    {"rows": 2},
    {"aria-describedby": "x-hint x-error", "aria-invalid": "true"},
    {"autocomplete": "off", "class_": 'wide "quoted"', "data_role": "picker"},
    {"required": False, "disabled": True, "value": Markup('<b title="t">')},
]


def wtforms_writes(field, render_kw):
    return DefaultMeta().render_field(field, dict(render_kw))


def every_field(form):
    for field in form:
        yield field
        if field.type == "RadioField":
            yield from field  # each radio button is rendered on its own


@pytest.fixture(scope="module")
def app():
    return create_app(TestConfig, DATABASE_URL="sqlite://")


def build(form_class):
    """A form of `form_class` with choices wherever a field wants them (views fill
    them in from the database)."""
    if form_class is BusinessHoursForm:  # its days' fields are added for the page
        form_class = business_hours_form_class(list(calendar.day_name))
    kwargs = {}
    if "service_lines" in form_class.__init__.__code__.co_varnames:
        kwargs["service_lines"] = []
    form = form_class(formdata=None, **kwargs)
    for field in form:
        if hasattr(field, "choices") and field.choices is None:
            field.choices = [(1, "One"), (2, AWKWARD)]
    return form


def filled(form):
    """Every field given an awkward value, then validated so that errors show."""
    data = MultiDict()
    for field in form:
        if field.type in ("SelectMultipleField", "RadioField", "SelectField"):
            data.add(field.name, "2")
        elif field.type != "BooleanField":
            data.add(field.name, AWKWARD)
        else:
            data.add(field.name, "y")
    form.process(data)
    form.validate()
    return form


@pytest.mark.parametrize("fill", [False, True], ids=["blank", "filled"])
def test_every_portal_form_is_written_as_wtforms_writes_it(app, fill):
    checked = 0
    with app.test_request_context():
        for form_class in all_form_classes():
            form = build(form_class)
            if fill:
                form = filled(form)
            for field in every_field(form):
                for render_kw in CALLER_ATTRIBUTES:
                    expected = wtforms_writes(field, render_kw)
                    assert write_field(field, render_kw) == expected, (form_class, field.name)
                    assert isinstance(field(**render_kw), Markup)
                    checked += 1
    assert checked > 500  # every form was built, not skipped


class SearchBox(TextInput):
    input_type = "search"


class OwnSelect(Select):
    pass


class Everything(Form):
    text = StringField(validators=[DataRequired(), Length(min=2, max=40)])
    narrow = StringField(render_kw={"class": "narrow", "maxlength": 5})
    password = PasswordField()
    shown_password = PasswordField(widget=PasswordInput(hide_value=False))
    notes = TextAreaField(validators=[Length(max=500)])
    pick = SelectField(choices=[("a", "A & B"), ("b", None), (True, "Yes")])
    picks = SelectMultipleField(choices=[("a", "A"), ("b", "B")])
    grouped = SelectField(
        choices=[
            SelectChoice("a", "A", optgroup="Group <1>"),
            SelectChoice("b", "B", optgroup="Two"),
        ]
    )
    marked = SelectField(choices=[SelectChoice("a", "A", render_kw={"data_x": 'y"z'})])
    mode = RadioField(choices=[("video", "Video"), ("phone", "Phone")], default="video")
    agree = BooleanField(validators=[DataRequired()])
    day = DateField()
    bounded_day = DateField(render_kw={"min": "2020-01-01"})
    count = IntegerField(widget=NumberInput(), validators=[NumberRange(min=1, max=9)])
    custom = StringField(widget=SearchBox())
    subclassed = SelectField(choices=[("a", "A")], widget=OwnSelect())


@pytest.mark.parametrize(
    "data",
    [
        None,
        MultiDict(
            [
                ("text", AWKWARD),
                ("narrow", "x"),
                ("password", "secret"),
                ("shown_password", "shown"),
                ("notes", AWKWARD),
                ("pick", "True"),
                ("picks", "a"),
                ("picks", "b"),
                ("grouped", "b"),
                ("marked", "a"),
                ("mode", "phone"),
                ("agree", "y"),
                ("day", "2026-02-30"),
                ("bounded_day", "2026-01-01"),
                ("count", "12"),
                ("custom", "<x>"),
            ]
        ),
    ],
    ids=["blank", "filled"],
)
def test_widget_options_no_portal_form_uses_yet_are_written_the_same(data):
    form = Everything(formdata=data)
    form.validate()
    for field in every_field(form):
        for render_kw in CALLER_ATTRIBUTES:
            assert write_field(field, render_kw) == wtforms_writes(field, render_kw), field.name


def test_a_flag_given_as_a_callable_is_called_for_an_input():
    form = Everything()
    form.text.flags.maxlength = lambda: 12
    assert 'maxlength="12"' in write_field(form.text, {})
    assert write_field(form.text, {}) == wtforms_writes(form.text, {})


def test_attributes_escape_names_and_values_as_html_params_does():
    from wtforms.widgets.core import html_params

    cases = {"a<b": True, "data_x_y": 'q"uote', "value": Markup('"'), "off": False, "n": 0}
    assert attributes(cases) == html_params(**cases)

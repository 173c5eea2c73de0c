"""Every field of every form is written exactly as WTForms' own widgets write it.

portal/form_html.py writes fields faster than WTForms does; these tests hold it to the
same bytes, for each form of the portal blank, filled with awkward values, with errors
and with the attributes our macros pass, and for widget options no form uses yet.
"""

from __future__ import annotations

import calendar
from types import SimpleNamespace

import pytest
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    FloatField,
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
from wtforms.widgets import (
    EmailInput,
    HiddenInput,
    Input,
    NumberInput,
    PasswordInput,
    Select,
    TelInput,
    TextInput,
    URLInput,
)

from portal import create_app
from portal.admin.forms import BusinessHoursForm, business_hours_form_class, targets_form_class
from portal.admin.sla_settings import TARGET_STAGES
from portal.config import TestConfig
from portal.form_html import attributes, write_field
from portal.models import ItemKind, Urgency
from portal.referrals.forms import answer_form_class, referral_form_class
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


def portal_form_classes():
    """Every form class, those a page makes for itself included (their fields depend on
    the week, the SLA stages or a service line's required items)."""
    items = [
        SimpleNamespace(id=1, label="Insurance card", kind=ItemKind.DOCUMENT, help_text="Front"),
        SimpleNamespace(id=2, label="Allergies <list>", kind=ItemKind.ANSWER, help_text=""),
    ]
    line = SimpleNamespace(required_items=items)
    made = [
        business_hours_form_class(list(calendar.day_name)),
        targets_form_class(TARGET_STAGES, list(Urgency)),
        referral_form_class(line, for_staff=False),
        referral_form_class(line, for_staff=True),
        answer_form_class(items),
    ]
    # A class made by an earlier test may be found too: only the base is left out.
    return [c for c in all_form_classes() if c is not BusinessHoursForm] + made


def build(form_class):
    """A form of `form_class` with choices wherever a field wants them (views fill
    them in from the database)."""
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
        for form_class in portal_form_classes():
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
    hours = DecimalField(places=2, validators=[NumberRange(min=0.25, max=720)])
    ratio = FloatField()
    stepped = IntegerField(widget=NumberInput(step=5, min=0), validators=[NumberRange(min=1)])
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
                ("hours", "8"),
                ("ratio", "x"),
                ("stepped", "10"),
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


def test_the_widgets_written_here_still_render_as_this_module_assumes():
    # A WTForms release that gives one of them behaviour of its own fails here first.
    for kind in (TextInput, EmailInput, TelInput, URLInput, HiddenInput):
        assert kind.__call__ is Input.__call__, kind
    assert NumberInput.__call__ is not Input.__call__  # its own step, min and max: handled


def test_a_decimal_field_keeps_any_step():
    form = Everything()
    assert 'step="any"' in write_field(form.hours, {}) and 'min="0.25"' in write_field(
        form.hours, {}
    )


def test_a_flag_given_as_a_callable_is_called_for_an_input():
    form = Everything()
    form.text.flags.maxlength = lambda: 12
    assert 'maxlength="12"' in write_field(form.text, {})
    assert write_field(form.text, {}) == wtforms_writes(form.text, {})


def test_attributes_escape_names_and_values_as_html_params_does():
    from wtforms.widgets.core import html_params

    cases = {"a<b": True, "data_x_y": 'q"uote', "value": Markup('"'), "off": False, "n": 0}
    assert attributes(cases) == html_params(**cases)

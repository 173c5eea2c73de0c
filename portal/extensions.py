"""Every extension object, created unbound; `create_app` binds them."""

from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx

from portal.database import Database

db = Database()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()

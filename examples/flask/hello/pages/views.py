import os

from flask import Blueprint, current_app, render_template

VERSION = "1"
pages = Blueprint("pages", __name__, template_folder="templates")


@pages.route("/")
def index() -> str:
    greeting = current_app.config["GREETING"]
    return render_template("pages/index.html", version=VERSION, greeting=greeting,
                           pid=os.getpid())

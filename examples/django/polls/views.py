import os

from django.conf import settings
from django.shortcuts import render

VERSION = "1"


def index(request):
    context = {"version": VERSION, "greeting": settings.GREETING, "pid": os.getpid()}
    return render(request, "polls/index.html", context)

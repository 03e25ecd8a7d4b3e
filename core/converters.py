"""URL converters shared by the apps' page URLs."""

from django.urls import register_converter
from django.urls.converters import PathConverter


class NameConverter(PathConverter):
    """An object's name in a page URL: any text, "/" included, and also newlines, which Django's `path`
    converter (`.+`) refuses, so a name stored before the input rules could not be linked (NoReverseMatch)."""

    regex = "(?s:.+)"


register_converter(NameConverter, "name")

"""Picture tiles: the demo has no images, so restaurants and products show a colour gradient."""

from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

#: Two CSS colours, ``"#rrggbb #rrggbb"``; nothing else may reach a style attribute.
validate_colors = RegexValidator(r"^#[0-9a-fA-F]{6} #[0-9a-fA-F]{6}$", _("Two colours like #ff8a65 #bf360c."))


def gradient(colors: str) -> str:
    """The CSS background of a picture tile."""
    first, _sep, second = colors.partition(" ")
    return f"linear-gradient(135deg, {first}, {second or first})"

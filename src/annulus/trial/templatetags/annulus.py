from django import template
from django.utils.translation import get_language

register = template.Library()


@register.filter
def tr(text):
    """Pick the language of a protocol Text (en/zh) for the active language."""
    return text.get(get_language()) if hasattr(text, "get") and hasattr(text, "en") else text


@register.filter
def sci(text):
    """Powers of ten as printed: "20x10^6" -> "20×10⁶" (arm names, units)."""
    from annulus.notation import scientific

    return scientific(text)


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None


@register.simple_tag(takes_context=True)
def sort_link(context, key, label):
    request = context["request"]
    params = request.GET.copy()
    current = params.get("sort", "")
    params["sort"] = f"-{key}" if current == key else key
    params.pop("page", None)
    arrow = " ▲" if current == key else (" ▼" if current == f"-{key}" else "")
    from django.utils.html import format_html

    return format_html('<a href="?{}">{}{}</a>', params.urlencode(), label, arrow)

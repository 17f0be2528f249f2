"""Chinese fonts for matplotlib (no Django): the report's plots and the DSMB report's plot use them.

matplotlib's font cache may predate fonts installed later (``make chromium`` installs WenQuanYi
Micro Hei), so the known font files are added to it by path. Where none is installed a plot is
drawn without Chinese glyphs rather than failing.
"""

from __future__ import annotations

import os

CJK_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
             "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


def chinese_fonts() -> list[str]:
    """Family names of the Chinese fonts installed (added to matplotlib's list on first use)."""
    from matplotlib import font_manager

    names = []
    for path in CJK_FONTS:
        if os.path.exists(path):
            known = {f.fname for f in font_manager.fontManager.ttflist}
            if path not in known:
                font_manager.fontManager.addfont(path)
            names += [f.name for f in font_manager.fontManager.ttflist if f.fname == path]
    return list(dict.fromkeys(names))

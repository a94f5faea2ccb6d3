"""A deterministic synthetic ARTeFACT-like damage dataset.

The generator paints an undamaged "artwork" (:mod:`.artwork`: its look depends on a *content* type
and is tinted/textured by a *material*), optionally sets it on a mount / scanner bed (mask value
:data:`~heritage_damage_seg.classes.IGNORE_INDEX`), then paints instances of the 15 ARTeFACT
damage classes on it in a fixed physical order (:mod:`.damage`, :data:`.damage.PAINT_ORDER`), so
that a later class overwrites an earlier one in both the image and the mask.

The mask always matches what was drawn (this is tested):

* a pixel labelled ``k`` in ``1..15`` was changed by an instance of class ``k``, which was the last
  instance to change it, and the final image differs from the clean artwork there;
* a pixel labelled ``0`` (Clean) has exactly the clean artwork's colour;
* a pixel labelled ``255`` is exactly the region outside the artwork (nothing is drawn there).

Soft effects (staining, dirt, lightleak, ...) are labelled where they are visible: where their
opacity exceeds a per-class threshold *and* the pixel colour changes by at least a few grey
levels; below that the pixel is left untouched.

:func:`generate_dataset` (:mod:`.export`) writes the layout of a real ARTeFACT export
(``images/{id}.png``, ``annotations/{id}.png`` as mode ``"L"`` index PNGs, ``metadata.csv``), with
extra *views* of each artwork (:mod:`.views`) named like ARTeFACT's offline-augmented copies
(``syn0000_aug1``). :mod:`.numeric` holds the small helpers they share (noise, blobs, lines).

Cost (one shared core, measured): ~60 ms to render an artwork with sides in 192-768 px plus
~25 ms to encode its two PNGs (150 artworks in ~14 s); ~2-2.5 s for a 2000x3000 scan, i.e. roughly
0.35 s per megapixel. Everything is vectorised NumPy plus PIL drawing (no per-pixel Python loops);
``workers > 1`` renders artworks in parallel processes with byte-identical output.
"""

from heritage_damage_seg.data.synthetic.artwork import CONTENTS, MATERIALS
from heritage_damage_seg.data.synthetic.damage import SyntheticSample, render_sample
from heritage_damage_seg.data.synthetic.export import METADATA_COLUMNS, generate_dataset
from heritage_damage_seg.data.synthetic.views import apply_view, random_view

__all__ = [
    "CONTENTS",
    "MATERIALS",
    "METADATA_COLUMNS",
    "SyntheticSample",
    "apply_view",
    "generate_dataset",
    "random_view",
    "render_sample",
]

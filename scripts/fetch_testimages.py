#!/usr/bin/env python3
"""Copy the public-domain sample photographs that scikit-image and matplotlib ship
into ``testimages/`` (nothing is downloaded: both packages carry the files).

Run once from the project root after ``pip install scikit-image matplotlib``::

    python scripts/fetch_testimages.py

The files are committed, so the tests and the service do not need these packages.
``cyclo1.jpg`` and ``cyclo2.jpg`` are the names used by the request example in the
service contract; they are copies of two of the photographs below. ``coffee_redacted.jpg``
is coffee.jpg with a black 200x80 box, for the /compare example.
"""
import importlib.util
import os
import sys

from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
DEST = os.path.join(os.path.dirname(HERE), "testimages")


def package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{name} is not installed (pip install {name})")
    return list(spec.submodule_search_locations)[0]


def main() -> None:
    sk = os.path.join(package_dir("skimage"), "data")
    mpl = os.path.join(package_dir("matplotlib"), "mpl-data", "sample_data")
    # source file -> (destination name, save options)
    wanted = {
        os.path.join(sk, "astronaut.png"): ("astronaut.jpg", {"quality": 92}),  # a face
        os.path.join(sk, "coffee.png"): ("coffee.jpg", {"quality": 92}),
        os.path.join(sk, "chelsea.png"): ("chelsea.jpg", {"quality": 92}),
        os.path.join(sk, "camera.png"): ("camera.png", {}),  # 8-bit grayscale
        os.path.join(mpl, "grace_hopper.jpg"): ("grace_hopper.jpg", {"quality": 92}),  # a face
    }
    os.makedirs(DEST, exist_ok=True)
    for src, (name, opts) in wanted.items():
        with Image.open(src) as im:
            im.load()
            if name.endswith(".jpg"):
                im = im.convert("RGB")
            im.save(os.path.join(DEST, name), **opts)
        print("wrote", name)
    # A copy of coffee.jpg with a black box: the pair the /compare example uses.
    with Image.open(os.path.join(DEST, "coffee.jpg")) as im:
        marked = im.convert("RGB")
    ImageDraw.Draw(marked).rectangle([40, 300, 239, 379], fill=(0, 0, 0))
    marked.save(os.path.join(DEST, "coffee_redacted.jpg"), quality=92)
    print("wrote coffee_redacted.jpg")
    for alias, src in (("cyclo1.jpg", "chelsea.jpg"), ("cyclo2.jpg", "coffee.jpg")):
        with open(os.path.join(DEST, src), "rb") as f, open(os.path.join(DEST, alias), "wb") as g:
            g.write(f.read())
        print("wrote", alias)


if __name__ == "__main__":
    main()

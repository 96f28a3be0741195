"""Write reprolab/encoders/imagenet_hypernym_prompts.json: one prompt per ImageNet-1k class that names the class
and its WordNet ancestors, e.g. "a photo of a goldfinch, a kind of finch, bird, passerine, oscine, ..." .

Why: the offline stand-in represents an image by a mixture of the text embeddings of the ImageNet classes it
predicts (ConSE). With the bare class name, "a photo of a bird" is only loosely close to "a photo of a goldfinch";
naming the ancestors makes every ImageNet bird class carry the word "bird" (the hierarchy the ImageNet labels come
from). Measured on a CIFAR-10 validation split carved from the training set: see docs/standin.md.

Needs WordNet 3.0 noun data (Debian: ``apt-get install wordnet-base`` → /usr/share/wordnet/data.noun) and timm
(ImageNet wnids, whose numbers are WordNet 3.0 noun offsets). nltk's WordNet reader is not used: it refuses paths
outside NLTK_DATA and needs a ``lexnames`` file that Debian's package does not ship; the data file format is a
documented one-line-per-synset text format (wndb(5WN)), read below in a few lines.

    python scripts/make_hypernym_prompts.py [/usr/share/wordnet/data.noun]
"""

import json
import sys
from pathlib import Path

import open_clip
from timm.data import ImageNetInfo

DEPTH = 4  # ancestors named per class (chosen on validation: 2-6 within ±0.01)
LEMMAS = 3  # synonyms named per ancestor ("car, auto, automobile")
# Abstract WordNet nodes that every class shares; naming them adds no information.
STOP = {
    "whole",
    "object",
    "physical entity",
    "entity",
    "living thing",
    "organism",
    "artifact",
    "instrumentality",
    "chordate",
    "vertebrate",
    "placental",
    "causal agent",
    "matter",
    "abstraction",
    "unit",
}
OUT = Path(__file__).resolve().parents[1] / "reprolab" / "encoders" / "imagenet_hypernym_prompts.json"


def read_nouns(path):
    """offset → (lemmas, hypernym offsets) from WordNet's data.noun (wndb(5WN) format)."""
    synsets = {}
    for line in open(path, encoding="latin-1"):
        if line.startswith("  "):  # licence header
            continue
        f = line.split(" | ")[0].split()
        n_words = int(f[3], 16)
        lemmas = [f[4 + 2 * i].replace("_", " ") for i in range(n_words)]
        j = 4 + 2 * n_words
        n_ptrs, j = int(f[j]), j + 1
        hyper = [
            int(f[j + 4 * p + 1]) for p in range(n_ptrs) if f[j + 4 * p] in ("@", "@i") and f[j + 4 * p + 2] == "n"
        ]
        synsets[int(f[0])] = (lemmas, hyper)
    return synsets


def ancestors(synsets, offset):
    """Lemma lists of the first-hypernym chain above ``offset``, abstract nodes removed."""
    out, cur = [], offset
    while synsets[cur][1]:
        cur = synsets[cur][1][0]
        if synsets[cur][0][0] not in STOP:
            out.append(synsets[cur][0])
    return out


def build_prompts(path="/usr/share/wordnet/data.noun") -> list[str]:
    synsets, info = read_nouns(path), ImageNetInfo()
    prompts = []
    for k, name in enumerate(open_clip.IMAGENET_CLASSNAMES):
        anc = ancestors(synsets, int(info.index_to_label_name(k)[1:]))[:DEPTH]
        kinds = ", ".join(", ".join(a[:LEMMAS]) for a in anc)
        prompts.append(f"a photo of a {name}, a kind of {kinds}." if anc else f"a photo of a {name}.")
    return prompts


def main(path="/usr/share/wordnet/data.noun"):
    prompts = build_prompts(path)
    OUT.write_text(
        json.dumps(
            {
                "source": "WordNet 3.0 (Debian wordnet-base) via scripts/make_hypernym_prompts.py",
                "depth": DEPTH,
                "lemmas": LEMMAS,
                "prompts": prompts,
            },
            indent=0,
        )
        + "\n"
    )
    print(f"wrote {len(prompts)} prompts to {OUT}; e.g. {prompts[11]!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])

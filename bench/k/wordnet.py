"""Distances between ImageNet classes in the WordNet 3.0 noun hierarchy, offline.

ImageNet's wnids (``n02123045``) are WordNet 3.0 noun offsets, and Debian's ``wordnet-base``
package ships WordNet 3.0 in ``/usr/share/wordnet``. nltk reads it, but needs the ``lexnames``
file the package leaves out (a fixed table, printed in the lexnames(5WN) manual page) and only
reads inside its data path: the files are copied once, with ``lexnames``, into the cache.

Similarities: ``wup`` (Wu-Palmer), ``path`` (shortest hypernym path) and ``lin``. Lin needs an
information content; no sense-tagged corpus is available offline, so it is the *intrinsic*
content of the hierarchy itself (a synset's count = its number of descendants + 1, Seco et al.
2004), stated in the run's parameters.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from clusterbench.core.errors import UserError

SYSTEM_WORDNET = Path("/usr/share/wordnet")
SIMILARITIES = ("wup", "path", "lin")
_FILES = ("data.noun", "index.noun", "noun.exc", "data.verb", "index.verb", "verb.exc", "data.adj", "index.adj",
          "adj.exc", "data.adv", "index.adv", "adv.exc")
# lexnames(5WN): file number, name, syntactic category (1 noun, 2 verb, 3 adjective, 4 adverb)
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_READERS: dict[str, object] = {}


def wordnet_source() -> Path:
    """Where WordNet 3.0's data files are: ``$CLUSTERBENCH_WORDNET`` or Debian's package."""
    root = Path(os.environ.get("CLUSTERBENCH_WORDNET", SYSTEM_WORDNET)).expanduser()
    if not (root / "data.noun").is_file():
        raise UserError(f"WordNet 3.0 not found in {root} (no data.noun): apt-get install wordnet-base "
                        "(Debian/Ubuntu), or set CLUSTERBENCH_WORDNET to a WordNet 3.0 dict directory")
    return root


def wordnet_reader(cache_dir: str | os.PathLike):
    """An nltk WordNet reader over a copy of the data files plus ``lexnames`` in ``cache_dir``."""
    source = wordnet_source()
    root = Path(cache_dir) / "wordnet-3.0"
    if str(root) in _READERS:
        return _READERS[str(root)]
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError:
        raise UserError("vectors=wordnet needs nltk: pip install nltk") from None
    if not (root / "lexnames").is_file():
        tmp = root.with_name(root.name + f".{os.getpid()}.part")
        tmp.mkdir(parents=True, exist_ok=True)
        for name in _FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, tmp / name)
        (tmp / "lexnames").write_text("".join(f"{i:02d}\t{n}\t{_CATEGORY[n.split('.')[0]]}\n"
                                              for i, n in enumerate(_LEXNAMES)))
        if root.exists():  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, root)
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))  # nltk reads corpora only inside its data path

    class WordNet30(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None  # nltk would map onto its downloaded "wordnet" corpus: this copy is WordNet 3.0 itself

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": not used here
        reader = WordNet30(str(root), None)
    _READERS[str(root)] = reader
    return reader


def synsets_of(reader, wnids: list[str]) -> list:
    out = []
    for wnid in wnids:
        if not (isinstance(wnid, str) and len(wnid) == 9 and wnid[0] == "n" and wnid[1:].isdigit()):
            raise UserError(f"vectors=wordnet: {wnid!r} is not a WordNet noun id (nXXXXXXXX)")
        try:
            out.append(reader.synset_from_pos_and_offset("n", int(wnid[1:])))
        except Exception:  # noqa: BLE001 - nltk raises several kinds for an offset it does not hold
            raise UserError(f"vectors=wordnet: {wnid} is not a synset of this WordNet (3.0 is needed)") from None
    return out


def _intrinsic_ic(reader) -> dict:
    """nltk's information-content table from the hierarchy alone: count = descendants + 1."""
    counts: dict[int, float] = {}

    def count(synset) -> float:
        offset = synset.offset()
        if offset not in counts:
            counts[offset] = 1.0 + sum(count(h) for h in synset.hyponyms() + synset.instance_hyponyms())
        return counts[offset]

    roots = [s for s in reader.all_synsets("n") if not s.hypernyms() and not s.instance_hypernyms()]
    total = sum(count(r) for r in roots)
    return {"n": {**counts, 0: total}}


def distance_matrix(reader, synsets: list, similarity: str) -> np.ndarray:
    """Square matrix of ``1 - similarity`` (``path``, ``wup`` and ``lin`` are all in [0, 1])."""
    if similarity not in SIMILARITIES:
        raise UserError(f"tune similarity={similarity!r}: expected one of {', '.join(SIMILARITIES)}")
    ic = _intrinsic_ic(reader) if similarity == "lin" else None
    n = len(synsets)
    D = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            a, b = synsets[i], synsets[j]
            if similarity == "wup":
                s = a.wup_similarity(b)
            elif similarity == "path":
                s = a.path_similarity(b)
            else:
                s = a.lin_similarity(b, ic)
            D[i, j] = D[j, i] = 1.0 - float(s or 0.0)
    return np.clip(D, 0.0, 1.0)

"""``clusterbench export``: a cell's clusters as one folder per cluster holding the user's files
(links or copies), ``members.csv`` where items have no file of their own, and ``index.html``, an
offline browser of the clusters with thumbnails, file names and the cell's pictures."""

from .command import export

__all__ = ["export"]

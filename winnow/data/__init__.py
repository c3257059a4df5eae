"""Data I/O: read JSONL / JSON / CSV / TSV / Parquet (and HF datasets directories) into Samples,
write rows back atomically.

Importing this package is cheap: pandas, pyarrow and datasets are imported only inside the
functions that read or write those formats.
"""

from winnow.data.dataset import Dataset, load, save
from winnow.data.errors import DataError
from winnow.data.ids import content_id
from winnow.data.layouts import LAYOUTS, MAP_KEYS, parse_column_map
from winnow.data.readers import FORMATS

__all__ = [
    "FORMATS",
    "LAYOUTS",
    "MAP_KEYS",
    "DataError",
    "Dataset",
    "content_id",
    "load",
    "parse_column_map",
    "save",
]

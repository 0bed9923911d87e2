"""DICOM ingest: from "a file arrives" to an instance row or a quarantined file.

Both the drop folder and the C-STORE receiver go through `ingest_arrivals`.
"""

from core.ingest.pipeline import IngestReport, ingest_arrivals, ingest_folder
from core.ingest.prepare import Arrival

__all__ = ["Arrival", "IngestReport", "ingest_arrivals", "ingest_folder"]

"""Video input and output: H.264 writing (``writer``), decoding and framing (``reader``,
``framing``). PyAV and OpenCV are imported only when a reader or writer is used."""

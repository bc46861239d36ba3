"""The OpenVtuber application: the ``openvtuber`` CLI and the wiring of the pipeline."""

"""Wire formats, each pure and testable without sockets: VMC over OSC, the page's
messages, VMD motion files. Only types are shared with the rest of the project."""

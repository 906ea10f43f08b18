"""YAML definitions that report problems as `file:line: field: message`.

`load_located` parses one file and remembers the line of every key; `located_errors` maps a
pydantic `ValidationError` back to those lines; `load_directory` loads a whole directory and
reports every problem at once. Rules and playbooks both load through here.
"""

from responder.yamlfiles.directory import load_directory, yaml_files
from responder.yamlfiles.located import Located, YamlFileError, load_located, located_errors

__all__ = [
    "Located",
    "YamlFileError",
    "load_directory",
    "load_located",
    "located_errors",
    "yaml_files",
]

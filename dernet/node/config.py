"""The node's settings: command-line flags over a YAML file (``--config``) over the defaults here."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field

from ..errors import MissingFileError, UsageError
from ..records import RECORD_CONFIG, RecordError, record_from_dict

__all__ = ["Destination", "NodeConfig", "load_node_config"]

AeTitle = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[^\\\x00-\x1f]*[^\\\x00-\x1f ][^\\\x00-\x1f]*$")]
Port = Annotated[int, Field(ge=1, le=65535)]
_DESTINATION = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>[^:@]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Destination:
    """A DICOM application entity the results are sent to (C-STORE)."""

    __pydantic_config__ = RECORD_CONFIG
    ae_title: AeTitle
    host: str
    port: Port

    @classmethod
    def parse(cls, text: str) -> Destination:
        """``AE@HOST:PORT``, as ``--forward`` takes it."""
        match = _DESTINATION.match(text.strip())
        if match is None:
            raise UsageError(f"--forward {text!r}: expected AE@HOST:PORT, e.g. PACS@10.0.0.5:104")
        return record_from_dict(cls, {"ae_title": match["ae"], "host": match["host"], "port": int(match["port"])},
                                f"--forward {text!r}")  # fmt: skip

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class NodeConfig:
    """Every setting of the node; the defaults are the ones that hold when neither a file nor a flag sets one."""

    __pydantic_config__ = RECORD_CONFIG
    ae_title: AeTitle = "SPINECAD"  # the node's own AE title: what senders must call
    host: str = "127.0.0.1"  # address to listen on (0.0.0.0: every interface)
    port: Port = 11112  # DICOM port to listen on
    allow_calling_ae: tuple[AeTitle, ...] = ()  # AE titles allowed to send; empty: any
    models: Path = Path("export")  # the exported models (manifest.json)
    spool: Path = Path("spool")  # received instances, results, markers and status.json
    workers: Annotated[int, Field(ge=1, le=64)] = 1  # screening threads sharing one set of models
    queue_size: Annotated[int, Field(ge=1)] = 32  # instances waiting for a worker; a full queue slows senders down
    mode: Literal["gate", "fusion", "all"] = "gate"  # the gate's mode (dernet.deploy.screening.MODES)
    forward: tuple[Destination, ...] = ()  # where SR, SC and PR are sent (C-STORE)
    retries: Annotated[int, Field(ge=0, le=20)] = 3  # further attempts per destination after a failed one
    retry_backoff_s: Annotated[float, Field(ge=0)] = 2.0  # wait before the first retry; doubles each time
    network_timeout_s: Annotated[float, Field(gt=0)] = 30.0  # association, DIMSE and network timeouts (seconds)
    dicom_config: Path | None = None  # YAML over the DICOM results' defaults (manufacturer, series numbers, ...)


def load_node_config(path: Path | None, overrides: dict[str, Any]) -> NodeConfig:
    """The defaults, with ``path``'s keys over them and the flags that were given (not None) over those."""
    data: dict[str, Any] = {}
    where = "the node's flags"
    if path is not None:
        if not path.is_file():
            raise MissingFileError(f"{path}: not found; give a YAML file with the node's settings (configs/node.yaml)")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise RecordError(f"{path}: not readable YAML ({err}); fix the file") from None
        if not isinstance(data, dict):
            raise RecordError(f"{path}: expected keys and values (a YAML mapping); see configs/node.yaml")
        where = str(path)
    data.update({key: value for key, value in overrides.items() if value is not None})
    if isinstance(data.get("forward"), (list, tuple)):
        data["forward"] = [_destination_dict(d) for d in data["forward"]]
    return record_from_dict(NodeConfig, data, where, "see configs/node.yaml for the keys")


def _destination_dict(value: Any) -> Any:
    if isinstance(value, Destination):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, str):
        return _destination_dict(Destination.parse(value))
    return value


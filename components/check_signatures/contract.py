"""Check 14: the served API against an expected-signature file, so a retrain cannot change it silently.

The file is YAML or JSON, signature name -> inputs/outputs -> tensor name -> dtype and shape:

    serving_default:
      inputs:
        age: {dtype: float32, shape: [-1, 3]}
      outputs:
        score: {dtype: float32, shape: [-1, 1]}

`method_name` per signature is optional. A top-level `signatures:` key (the layout of `kfp-tfserving check
--json`) is accepted too, so a report of a good model can be saved as the contract.
"""

from __future__ import annotations

from typing import Any

import yaml

from kfp_tfserving.components.check_signatures.findings import ERROR, Finding
from kfp_tfserving.components.common.errors import UserError

Contract = dict[str, dict[str, Any]]
ROLES = ("inputs", "outputs")


def _dtype_name(value: Any, where: str) -> str:
    """TensorFlow's name of a dtype spelled as TensorFlow accepts it (float32, DT_FLOAT, float, ...), read
    from its DataType enum: parsing a contract imports no TensorFlow (the check step's own process)."""
    from kfp_tfserving.components.common.saved_model.tensor_spec import dtype_name
    from kfp_tfserving.components.common.saved_model.tf_protos import types_pb2

    enum = types_pb2().DataType
    text = str(value)
    names = {dtype_name(v) for v in enum.values() if v} | set(_ALIASES)
    try:
        if text.upper().startswith("DT_") and enum.Value(text.upper()):
            return dtype_name(enum.Value(text.upper()))
        if text in names:
            return _ALIASES.get(text, text)
    except ValueError:
        pass
    raise UserError(f"{where}: unknown dtype '{value}'", "use a name such as float32, int64, string")


# Spellings tf.dtypes.as_dtype accepts besides its own names.
_ALIASES = {"half": "float16", "float": "float32", "double": "float64"}


def _shape(value: Any, where: str) -> list[int] | None:
    if value is None:
        return None  # unknown rank
    if not isinstance(value, list) or not all(d is None or isinstance(d, int) for d in value):
        raise UserError(f"{where}: shape must be a list of ints (-1 for any size)", "e.g. shape: [-1, 3]")
    return [-1 if d is None or d < 0 else d for d in value]


def parse_contract(text: str, source: str) -> Contract:
    """The contract in a normal form: {signature: {method_name?, inputs: {name: {dtype, shape?}}, outputs}}."""
    try:
        doc = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as err:
        raise UserError(
            f"{source}: not valid YAML or JSON ({type(err).__name__})", "fix the file's syntax"
        ) from None
    if isinstance(doc, dict) and isinstance(doc.get("signatures"), dict):
        doc = doc["signatures"]
    if not isinstance(doc, dict) or not doc:
        raise UserError(f"{source}: expected a mapping of signature names", "see the check step's README")
    contract: Contract = {}
    for sig_name, sig in doc.items():
        if not isinstance(sig, dict) or not set(ROLES) <= set(sig):
            raise UserError(f"{source}: signature '{sig_name}' needs 'inputs' and 'outputs'", "list both")
        entry: dict[str, Any] = {}
        if sig.get("method_name"):
            entry["method_name"] = str(sig["method_name"])
        for role in ROLES:
            tensors = sig[role] or {}
            if not isinstance(tensors, dict):
                raise UserError(f"{source}: {sig_name}.{role} must map tensor names to dtype/shape", "")
            entry[role] = {}
            for name, spec in tensors.items():
                where = f"{source}: {sig_name}.{role}.{name}"
                if not isinstance(spec, dict) or "dtype" not in spec:
                    raise UserError(f"{where}: needs a dtype", "e.g. {dtype: float32, shape: [-1, 3]}")
                entry[role][str(name)] = {"dtype": _dtype_name(spec["dtype"], where)}
                if "shape" in spec:
                    entry[role][str(name)]["shape"] = _shape(spec["shape"], where)
        contract[str(sig_name)] = entry
    return contract


def load_contract(uri: str) -> Contract:
    """Read a contract from a local path or any URI the project's storage backends handle."""
    from kfp_tfserving.components.common.storage.registry import storage_for

    storage = storage_for(uri)
    if not storage.exists(uri):
        raise UserError(
            f"{uri}: contract file not found", "give the path or URI of the expected-signature file"
        )
    return parse_contract(storage.read_bytes(uri).decode("utf-8"), uri)


def _differ(code: str, message: str, signature: str, tensor: str = "") -> Finding:
    fix = "restore the served API, or update the contract on purpose if clients are changed too"
    return Finding(code, ERROR, message, fix, signature, tensor)


def _compare_tensors(name: str, role: str, expected: dict, actual: dict) -> list[Finding]:
    found = []
    for key in sorted(set(expected) - set(actual)):
        found.append(
            _differ("contract-missing", f"{role[:-1]} '{key}' is in the contract but not served", name, key)
        )
    for key in sorted(set(actual) - set(expected)):
        found.append(
            _differ("contract-extra", f"{role[:-1]} '{key}' is served but not in the contract", name, key)
        )
    for key in sorted(set(expected) & set(actual)):
        want, got = expected[key], actual[key]
        if want["dtype"] != got["dtype"]:
            found.append(
                _differ(
                    "contract-dtype", f"dtype is {got['dtype']}, the contract says {want['dtype']}", name, key
                )
            )
        if "shape" in want and want["shape"] != got["shape"]:
            found.append(
                _differ(
                    "contract-shape", f"shape is {got['shape']}, the contract says {want['shape']}", name, key
                )
            )
    return found


def check_contract(view) -> list[Finding]:
    if not view.contract or view.serve is None:
        return []
    found = []
    for name, expected in view.contract.items():
        sig = view.signatures.get(name)
        if sig is None:
            found.append(_differ("contract-missing", "the contract's signature is not served", name))
            continue
        actual = sig.as_dict()
        if "method_name" in expected and expected["method_name"] != actual["method_name"]:
            found.append(
                _differ(
                    "contract-method",
                    f"method_name is '{actual['method_name']}', the contract says '{expected['method_name']}'",
                    name,
                )
            )
        for role in ROLES:
            found += _compare_tensors(name, role, expected[role], actual[role])
    return found


def contract_names(contract: Contract | None) -> set[tuple[str, str]]:
    """(signature, tensor) pairs the contract names: auto-generated names there are intended."""
    if not contract:
        return set()
    return {(sig, t) for sig, entry in contract.items() for role in ROLES for t in entry[role]}

"""Check 8: signatures meet the rules of TF Serving's Predict, Classify and Regress APIs."""

from __future__ import annotations

from kfp_tfserving.components.check_signatures.findings import ERROR, WARNING, Finding

PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
METHODS = (PREDICT, CLASSIFY, REGRESS)


def _finding(message: str, fix: str, signature: str, tensor: str = "", severity: str = ERROR) -> Finding:
    return Finding("signature-rules", severity, message, fix, signature, tensor)


def _example_input(name: str, sig, api: str) -> list[Finding]:
    specs = {s.name: s for s in sig.inputs}
    if list(specs) != ["inputs"]:
        return [
            _finding(
                f"a {api} signature needs exactly one input named 'inputs' (has {sorted(specs)})",
                f"take serialized tf.Example strings as the single input 'inputs' (tf.compat.v1.saved_model."
                f"{api.lower()}_signature_def does this)",
                name,
            )
        ]
    spec = specs["inputs"]
    found = []
    if spec.dtype != "string":
        found.append(
            _finding(
                f"'inputs' is {spec.dtype}; {api} feeds serialized tf.Example strings",
                "make 'inputs' a DT_STRING tensor of serialized tf.Example",
                name,
                "inputs",
            )
        )
    if spec.shape is not None and len(spec.shape) != 1:
        found.append(
            _finding(
                f"'inputs' has rank {len(spec.shape)}; {api} feeds a 1-D batch of examples",
                "give 'inputs' the shape [-1]",
                name,
                "inputs",
            )
        )
    return found


def _classify_outputs(name: str, sig) -> list[Finding]:
    outs = {s.name: s for s in sig.outputs}
    if not {"classes", "scores"} & set(outs):
        return [
            _finding(
                f"a Classify signature needs an output 'classes' or 'scores' (has {sorted(outs)})",
                "name the outputs 'classes' (string labels) and/or 'scores' (float)",
                name,
            )
        ]
    found = []
    for key, dtype in (("classes", "string"), ("scores", "float32")):
        spec = outs.get(key)
        if spec is None:
            continue
        if spec.dtype != dtype:
            found.append(
                _finding(
                    f"'{key}' is {spec.dtype}, Classify needs {dtype}", f"cast '{key}' to {dtype}", name, key
                )
            )
        if spec.shape is not None and len(spec.shape) != 2:
            found.append(
                _finding(
                    f"'{key}' has rank {len(spec.shape)}; Classify needs [batch, num_classes]",
                    f"reshape '{key}' to [-1, num_classes]",
                    name,
                    key,
                )
            )
    both = [outs[k].shape for k in ("classes", "scores") if k in outs and outs[k].shape is not None]
    columns = {shape[1] for shape in both if len(shape) == 2 and shape[1] is not None}
    if len(both) == 2 and len(columns) == 2:
        found.append(
            _finding(
                f"'classes' has {both[0][1]} columns but 'scores' has {both[1][1]}",
                "return one class label per score",
                name,
            )
        )
    return found


def _regress_outputs(name: str, sig) -> list[Finding]:
    outs = {s.name: s for s in sig.outputs}
    if list(outs) != ["outputs"]:
        return [
            _finding(
                f"a Regress signature needs exactly one output named 'outputs' (has {sorted(outs)})",
                "return the prediction as the single float output 'outputs'",
                name,
            )
        ]
    spec = outs["outputs"]
    found = []
    if spec.dtype != "float32":
        found.append(
            _finding(f"'outputs' is {spec.dtype}, Regress needs float32", "cast to float32", name, "outputs")
        )
    if spec.shape is not None and not (
        len(spec.shape) == 1 or (len(spec.shape) == 2 and spec.shape[1] in (1, None))
    ):
        found.append(
            _finding(
                f"'outputs' has shape {list(spec.shape)}; Regress needs [batch] or [batch, 1]",
                "return one value per example",
                name,
                "outputs",
            )
        )
    return found


def check_signature_rules(view) -> list[Finding]:
    found = []
    for name, sig in view.signatures.items():
        method = sig.method_name
        if method == CLASSIFY:
            found += _example_input(name, sig, "Classify") + _classify_outputs(name, sig)
        elif method == REGRESS:
            found += _example_input(name, sig, "Regress") + _regress_outputs(name, sig)
        elif not method:
            found.append(
                _finding(
                    "the signature has no method_name; older model servers reject it",
                    f"export with method_name '{PREDICT}'",
                    name,
                    severity=WARNING,
                )
            )
        elif method != PREDICT:
            found.append(
                _finding(
                    f"method_name '{method}' is none of {list(METHODS)}; TF Serving rejects requests to it",
                    f"export with method_name '{PREDICT}'",
                    name,
                )
            )
    return found

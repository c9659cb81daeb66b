"""Import times, each in a fresh interpreter: the framework-neutral core and both builds.

`import parity` must stay light (target: under 0.3 s) and load no framework, because
the command line, `--help` and the tokenizer all sit on it. Reported per module: the
wall time of `python -c "import X"` minus that of `python -c "pass"` (interpreter
start-up), interleaved rounds, median and min-max; and which frameworks got loaded.

    python benchmarks/import_time.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "transformers")
MODULES = {
    "parity": "import parity",
    "parity.commands.predict": "import parity.commands.predict",
    "bertcnn_torch": "import bertcnn_torch",
    "bertcnn_tf": "import bertcnn_tf",
    "transformers.pipeline": "from transformers import pipeline",
}
TARGETS = {"parity": 0.3}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}

    def runner(code: str):
        return lambda: subprocess.run(
            [sys.executable, "-c", code], check=True, env=env, cwd=U.ROOT, stderr=subprocess.DEVNULL
        )

    load_before = U.loadavg()
    times = U.interleaved({"(interpreter)": runner("pass"), **{n: runner(c) for n, c in MODULES.items()}}, args.repeats)
    load_after = U.loadavg()
    startup = times.pop("(interpreter)")
    probe = f"import sys, json; {{}}; print(json.dumps([m for m in {FRAMEWORKS!r} if m in sys.modules]))"
    results, rows = {}, []
    for name, samples in times.items():
        net = U.summary([t - s for t, s in zip(samples, startup, strict=True)])
        loaded = json.loads(
            subprocess.run(
                [sys.executable, "-c", probe.format(MODULES[name])],
                env=env,
                cwd=U.ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        target = TARGETS.get(name)
        met = "" if target is None else ("yes" if net["median"] < target else "NO") + f" (< {target} s)"
        results[name] = {"import_s": net, "frameworks_loaded": loaded, "target_s": target}
        rows.append([name, U.spread(net, digits=3), ", ".join(loaded) or "none", met])
    print(U.table(["import", "seconds, median (min–max)", "frameworks loaded", "target"], rows))
    print(
        f"interpreter start-up subtracted: {U.spread(U.summary(startup), digits=3)}; "
        f"load average before {load_before}, after {load_after}"
    )
    U.write_results(
        "import_time",
        {
            "what": __doc__.splitlines()[0],
            "repeats": args.repeats,
            "interpreter_startup_s": U.summary(startup),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

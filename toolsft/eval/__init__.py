"""Evaluation: score model behaviour on toolsft test episodes and on public benchmarks (BFCL).

Kept free of heavy imports so that scoring predictions made elsewhere needs no torch.

Programmatic use (what `toolsft eval` and `toolsft demo` do)::

    from toolsft.engines import Decoding, make_engine
    from toolsft.eval.runner import EvalConfig, evaluate
    from toolsft.eval.results import write_run

    engine = make_engine("vllm", model=merged_folder)          # or "hf", "openai", "replay"
    results = evaluate(engine, EvalConfig(suite=Path("tool_schemas/commerce"),
                                          data=Path("datasets/commerce"), limit=20,
                                          decoding=Decoding(max_tokens=128, constrained=True)))
    write_run(results, "reports/x")                           # results.json, report.md, ...
    engine.close()

`toolsft.eval.html.render_html(runs, labels)` and `compare_markdown(runs, labels)` build the
side-by-side report; `toolsft.eval.gate.run_gate(baseline, results, tolerances)` the gate.
"""

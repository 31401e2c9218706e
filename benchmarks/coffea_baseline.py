"""The baseline of the speed comparison: the per-file job as a straightforward coffea implementation.

This is the AGC v2 ``TtbarAnalysis`` processor without ML, written the way the reference notebook
writes it: coffea NanoEvents (virtual mode, ``NanoAODSchema``) run by ``processor.Runner`` with the
``IterativeExecutor``, object selection with jagged masks, ``PackedSelection`` regions, the trijet
candidates from ``ak.combinations`` of four-vectors, a ``hist.Hist`` with process and variation
category axes, and the loop over ``syst_variations`` that redoes the selection for every variation
(including the weight-only ones, as the reference does). Nothing from ``agc_ttbar`` is used except
the cross sections, so the comparison also cross-checks the package's selection.

Differences from the reference, none of which changes the nominal histograms:
- ``btag_var`` / ``scale_var`` weights use the correctionlib formula directly (``1 +- 0.075 pT/50``,
  ``1.025``/``0.975``) instead of loading ``corrections.json``;
- ``pt_res_up`` draws from a seeded ``numpy`` generator (the reference's is unseeded).
"""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np

B_TAG_THRESHOLD = 0.5
LUMI_PB = 3378.0


def _import_coffea():
    warnings.filterwarnings("ignore", module="coffea")
    from coffea import processor
    from coffea.analysis_tools import PackedSelection
    from coffea.nanoevents import NanoAODSchema

    NanoAODSchema.warn_missing_crossrefs = False
    return processor, PackedSelection, NanoAODSchema


def make_processor(seed: int = 0):
    """An instance of the baseline ``ProcessorABC``."""
    import hist

    processor, PackedSelection, _ = _import_coffea()

    class TtbarBaseline(processor.ProcessorABC):
        def __init__(self):
            self.rng = np.random.default_rng(seed)

        def process(self, events):
            hist_dict = {region: (hist.Hist.new.Reg(25, 50, 550, name="observable", label="observable [GeV]")
                                  .StrCat([], name="process", label="Process", growth=True)
                                  .StrCat([], name="variation", label="Systematic variation", growth=True)
                                  .Weight())
                         for region in ("4j1b", "4j2b")}
            process = events.metadata["process"]
            variation = events.metadata["variation"]
            xsec_weight = events.metadata["xsec"] * LUMI_PB / events.metadata["nevts"]

            pt = events.Jet.pt
            events["pt_scale_up"] = 1.03
            events["pt_res_up"] = ak.unflatten(
                self.rng.normal(np.ones(int(ak.sum(ak.num(pt)))), 0.05), ak.num(pt))

            syst_variations = ["nominal"]
            jet_kinematic_systs = ["pt_scale_up", "pt_res_up"]
            event_systs = [f"btag_var_{i}" for i in range(4)]
            if process == "wjets":
                event_systs.append("scale_var")
            if variation == "nominal":
                syst_variations.extend(jet_kinematic_systs)
                syst_variations.extend(event_systs)

            for syst_var in syst_variations:
                elecs, muons, jets = events.Electron, events.Muon, events.Jet
                if syst_var in jet_kinematic_systs:
                    jets["pt"] = jets.pt * events[syst_var]

                elecs = elecs[(elecs.pt > 30) & (np.abs(elecs.eta) < 2.1) & (elecs.cutBased == 4)
                              & (elecs.sip3d < 4)]
                muons = muons[(muons.pt > 30) & (np.abs(muons.eta) < 2.1) & muons.tightId & (muons.sip3d < 4)
                              & (muons.pfRelIso04_all < 0.15)]
                jets = jets[(jets.pt > 30) & (np.abs(jets.eta) < 2.4) & jets.isTightLeptonVeto]

                selections = PackedSelection(dtype="uint64")
                selections.add("exactly_1l", (ak.num(elecs) + ak.num(muons)) == 1)
                selections.add("atleast_4j", ak.num(jets) >= 4)
                selections.add("exactly_1b", ak.sum(jets.btagCSVV2 > B_TAG_THRESHOLD, axis=1) == 1)
                selections.add("atleast_2b", ak.sum(jets.btagCSVV2 > B_TAG_THRESHOLD, axis=1) >= 2)
                selections.add("4j1b", selections.all("exactly_1l", "atleast_4j", "exactly_1b"))
                selections.add("4j2b", selections.all("exactly_1l", "atleast_4j", "atleast_2b"))

                for region in ["4j1b", "4j2b"]:
                    region_selection = selections.all(region)
                    if region == "4j2b" and not ak.any(region_selection):
                        continue
                    region_jets = jets[region_selection]
                    region_weights = np.ones(len(region_jets)) * xsec_weight
                    if region == "4j1b":
                        observable = ak.sum(region_jets.pt, axis=-1)
                    else:
                        trijet = ak.combinations(region_jets, 3, fields=["j1", "j2", "j3"])
                        trijet["p4"] = trijet.j1 + trijet.j2 + trijet.j3
                        trijet["max_btag"] = np.maximum(trijet.j1.btagCSVV2,
                                                        np.maximum(trijet.j2.btagCSVV2, trijet.j3.btagCSVV2))
                        trijet = trijet[trijet.max_btag > B_TAG_THRESHOLD]
                        trijet_mass = trijet["p4"][ak.argmax(trijet.p4.pt, axis=1, keepdims=True)].mass
                        observable = ak.flatten(trijet_mass)

                    if syst_var in event_systs:
                        for direction, sign in (("up", 1.0), ("down", -1.0)):
                            if syst_var == "scale_var":
                                w = 1.0 + sign * 0.025
                            else:
                                w = 1.0 + sign * region_jets.pt[:, int(syst_var[-1])] * 0.075 / 50
                            hist_dict[region].fill(observable=observable, process=process,
                                                   variation=f"{syst_var}_{direction}", weight=region_weights * w)
                    else:
                        name = syst_var if variation == "nominal" else variation
                        hist_dict[region].fill(observable=observable, process=process, variation=name,
                                               weight=region_weights)
            return {"nevents": {events.metadata["dataset"]: len(events)}, "hist_dict": hist_dict}

        def postprocess(self, accumulator):
            return accumulator

    return TtbarBaseline()


def run_baseline(path: str, sample: str, nevts: int, chunksize: int = 200_000, tree: str = "Events") -> dict:
    """Run the baseline processor over one file; returns the coffea output (``hist_dict`` ...)."""
    from agc_ttbar.samples import XSEC_PB, split_sample_key

    processor, _, NanoAODSchema = _import_coffea()
    process, variation = split_sample_key(sample)
    fileset = {sample: {"files": {path: tree},
                        "metadata": {"process": process, "variation": variation,
                                     "xsec": XSEC_PB[process], "nevts": nevts}}}
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=NanoAODSchema,
                              chunksize=chunksize)
    return runner(fileset, make_processor(), treename=tree)


def nominal_arrays(output: dict, process: str, label: str = "nominal") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{region: (values, variances)}`` with flow bins of one process/variation of the output."""
    out = {}
    for region, h in output["hist_dict"].items():
        if process in h.axes["process"] and label in h.axes["variation"]:
            sub = h[:, process, label]
            out[region] = (np.asarray(sub.values(flow=True)), np.asarray(sub.variances(flow=True)))
    return out

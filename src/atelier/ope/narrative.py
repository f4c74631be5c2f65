"""The off-policy evaluation report's findings as sentences, computed from its tables (every branch is tested)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from atelier.ope.analysis import interval_verdicts


def synthetic_story(check: pd.DataFrame, true_value: float, logger_value: float) -> str:
    """What the repeated synthetic logs show (`synthetic.summary`: bias, coverage and spread per estimator): IPW's
    error and coverage, whether SNIPW moves less, how much DR moves with the true and a fitted model, DM's bias."""
    ipw, snipw, dr, oracle, dm = (check.loc[m] for m in ("ipw", "snipw", "dr", "dr_oracle", "dm"))
    return (
        f"True value {true_value:.4f} (the logger's own: {logger_value:.4f}). IPW's mean error is {ipw['bias']:+.4f} "
        f"and its interval holds the truth in {ipw['coverage']:.0%} of the logs; SNIPW moves "
        f"{'less' if snipw['spread'] < ipw['spread'] else 'more'} than IPW (spread {snipw['spread']:.4f} against "
        f"{ipw['spread']:.4f}); DR with the true click rates as its model moves {oracle['spread'] / ipw['spread']:.0%} "
        f"as much as IPW, with a fitted model {dr['spread'] / ipw['spread']:.0%}. DM's mean error is "
        f"{dm['bias']:+.4f}: its model, shrunk towards the average in sparse cells, is biased, and its interval "
        f"(around the fitted model, not refitted here) holds the truth in {dm['coverage']:.0%} of the logs."
    )


def exploration_story(facts: dict[str, Any], days: int, epsilon: float) -> str:
    """The exploratory replay's log in a sentence (`analysis.replay_table`'s facts): visits, buyers, pages shown."""
    shown = ", ".join(f"{page} {count:,}" for page, count in facts["shown"].items())
    return (f"{facts['rounds']:,} visits by {facts['customers']:,} customers over {days} days, "
            f"{facts['conversions']:,} with a purchase; {facts['eligible_share']:.0%} could be personalized. With "
            f"ε = {epsilon:g} the pages shown were: {shown}.")


def findings_story(found: dict[str, Any]) -> str:
    """`analysis.replay_findings` in words: coverage of the truth, DR's ranking against the true one, precision."""
    half = found["half_width"]
    order = "the same order" if found["same_ranking"] else "a different order"
    return (
        f"The weighted estimators' intervals hold the simulator's truth in **{found['covered']} of "
        f"{found['cases']}** cases. DR ranks the pages {' > '.join(found['dr_ranking'])}; the truth ranks them "
        f"{' > '.join(found['true_ranking'])} ({order}). Exploring has a price in precision: the default page, shown "
        f"to most visits, is pinned down to ±{half['default']:.2%} (DR), each explored page only to about "
        f"±{half['personalized']:.2%}; the largest importance weight is {found['largest_weight']:.0f}."
    )


def redrawn_story(redrawn: pd.DataFrame, recorded: float, draws: int, bootstrap_draws: int) -> str:
    """IPW over `draws` redrawn logs (`analysis.redrawn_logs`) against the estimate `recorded` from the log the shop
    recorded, which lies so many standard deviations from the truth."""
    ipw = redrawn.loc["ipw"]
    away = (recorded - ipw["truth"]) / ipw["spread"]
    return (
        f"Over {draws} redrawn logs IPW's mean is {ipw['mean']:.2%} against the truth {ipw['truth']:.2%} (bias "
        f"{ipw['bias']:+.3%}), a log's estimate spreads by ±{ipw['spread']:.2%} (one standard deviation) and the "
        f"intervals hold the truth in {ipw['coverage']:.0%} of the first {bootstrap_draws}. The log the shop actually "
        f"recorded estimated {recorded:.2%}: {away:+.1f} standard deviations from the truth. An unbiased estimator "
        "still gives one number from one log."
    )


def uplift_story(uplift: pd.DataFrame, days: int, epsilon: float) -> str:
    """The true uplift of personalizing, DR's estimate and the A/B test's (`analysis.replay_uplift`), each interval
    read by `analysis.interval_verdicts`."""
    by_source, verdict = uplift.set_index("source"), interval_verdicts(uplift)
    dr, ab = by_source.loc["dr"], by_source.loc["closed-loop A/B"]
    return (
        f"True uplift over these {days} days: **{by_source.loc['simulator truth', 'relative']:+.1%}** (in the "
        f"simulated shop). DR estimates {dr['relative']:+.1%} (95 % CI {dr['ci_low']:+.1%} to {dr['ci_high']:+.1%}): "
        f"its interval {verdict['dr']}. The A/B test measured {ab['relative']:+.1%} ({ab['ci_low']:+.1%} to "
        f"{ab['ci_high']:+.1%}): its interval {verdict.get('closed-loop A/B', 'is undefined')}. OPE paid for its "
        f"answer with {epsilon:.0%} exploration; the A/B test with half the customers."
    )


def obd_story(real: pd.DataFrame, relative_half_width: float) -> str:
    """What IPW makes of ZOZOTOWN's random logs (`analysis.obd_table`): coverage of BTS's measured click rate, the
    intervals' width, and how many random impressions a useful answer would need."""
    ipw = real[real["method"] == "ipw"].set_index("campaign")
    clicks = ", ".join(f"{campaign} {row['random_clicks']}" for campaign, row in ipw.iterrows())
    return (
        f"IPW's interval holds the measured BTS click rate in **{int(ipw['covers_measured'].sum())} of {len(ipw)}** "
        f"campaigns, but its width is the story: the random logs hold only {clicks} clicks, so every interval spans "
        f"about ±{((ipw['ci_high'] - ipw['ci_low']) / 2 / ipw['value']).mean():.0%} of the estimate. Measured, BTS "
        f"clicked {ipw.at['all', 'bts_measured']:.2%} against random's {ipw.at['all', 'random_measured']:.2%} (all "
        f"users); an interval narrow enough to tell them apart would need about "
        f"{ipw.at['all', 'rounds_to_separate']:,.0f} random impressions, and one within ±{relative_half_width:.0%} "
        f"of the click rate about {ipw.at['all', 'rounds_for_relative_half_width']:,.0f} (the sample has "
        f"{ipw.at['all', 'rounds']:,}; the full dataset has about 26 million rounds)."
    )

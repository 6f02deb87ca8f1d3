-- How often each rule, and each judge model, agrees with people: on the pairs with a strict
-- human majority for one response that the source decided, its agree and disagree pairs and
-- the confidence `charter merge` gives a rule by default, the posterior mean under a Beta prior
-- of 4 agreeing and 1 contradicting pseudo-pairs (the merge policy's rule_prior_agree and
-- rule_prior_disagree defaults; a test holds the two equal). A source's vote on a pair is the
-- side of the mean P(first) of its labels there (a rule: one label per constitution version;
-- a judge: its logprob and cot labels together); a mean of exactly 0.5 is no vote.
--
-- Columns:
--   kind: 'rule' or 'judge'
--   source: the rule as principle/rule, or the judge model
--   pairs: pairs it decided that people decided too
--   agree: those where its vote is the human majority's
--   disagree: those where it voted the other response
--   agreement_rate: agree / pairs
--   prior_agree: the Beta prior's agreeing pseudo-pairs
--   prior_disagree: the Beta prior's contradicting pseudo-pairs
--   confidence: (agree + prior_agree) / (pairs + prior_agree + prior_disagree), the estimated
--     P(the source is right) on a pair people did not label
create view rule_agreement as
with votes as (
    select case when method = 'rule' then 'rule' else 'judge' end as kind,
           case when method = 'rule' then coalesce(principle_id || '/' || rule_id, rule_id)
                else judge_model end as source,
           pair_id,
           avg(case when response_a_id < response_b_id then p_a else 1 - p_a end) as p_first
    from ai_labels
    group by all
), decided as (
    select v.kind, v.source, v.p_first > 0.5 as voted_first, h.majority_vote = 'first' as people_first
    from votes v join human_majority h on v.pair_id = h.pair_id
    where h.majority_vote in ('first', 'second') and abs(v.p_first - 0.5) > 1e-9
), counts as (
    select kind, source, count(*) as pairs,
           count(*) filter (where voted_first = people_first) as agree,
           count(*) filter (where voted_first <> people_first) as disagree,
           4.0::double as prior_agree, 1.0::double as prior_disagree
    from decided
    group by kind, source
)
select kind, source, pairs, agree, disagree,
       round(agree / pairs, 4) as agreement_rate,
       prior_agree, prior_disagree,
       round((agree + prior_agree) / (pairs + prior_agree + prior_disagree), 4) as confidence
from counts
order by kind desc, confidence, source;

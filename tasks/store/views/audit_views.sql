-- Audit views over the store's tables. Each answers one audit question in plain SQL;
-- `charter sql "select * from <view>"` shows them, `charter audit` summarises them.
-- The views that aggregate read only the narrow columns they need (ids, votes, times),
-- never the response texts, so they stay fast at millions of labels.

-- One family per conversation: the earliest non-empty family any prompt set gave it.
create view prompt_families as
select prompt_id,
       coalesce(arg_min(family, created_at) filter (where family is not null), '(none)') as family,
       arg_min(text, created_at) as text
from prompts
group by prompt_id;

-- Every label's vote, human or AI, without texts: the narrow input of the aggregate views.
create view label_votes as
select 'human' as source, annotator as labeller, pair_id, prompt_id,
       vote, confidence, created_at, source_row
from human_labels
union all
select 'ai', judge_model, pair_id, prompt_id,
       vote, greatest(p_a, 1 - p_a), created_at, null
from ai_labels;

-- Every label, human or AI, in one shape, with the responses, their lengths and the prompt family.
-- `vote` is orientation-free: 'first' and 'second' name the pair's responses in id order.
create view labels as
with unified as (
    select label_id, 'human' as source, annotator as labeller, 'human' as method, pair_id, prompt_id,
           response_a_id, response_b_id, response_a, response_b, choice, preferred_id, vote,
           confidence, null::varchar as principle_id, null::varchar as constitution_id, created_at
    from human_labels
    union all
    select label_id, 'ai', judge_model, method, pair_id, prompt_id,
           response_a_id, response_b_id, response_a, response_b, choice, preferred_id, vote,
           greatest(p_a, 1 - p_a), principle_id, constitution_id, created_at
    from ai_labels
)
select u.*,
       coalesce(f.family, '(none)') as family,
       length(response_a) as length_a,
       length(response_b) as length_b
from unified u left join prompt_families f using (prompt_id);

-- How many labels each source and labeller (annotator or judge model) contributed.
create view label_counts as
select source, labeller, count(*) as labels, count(distinct pair_id) as pairs,
       count(distinct prompt_id) as prompts, min(created_at) as first_label, max(created_at) as last_label
from label_votes
group by source, labeller
order by source, labels desc, labeller;

-- Coverage ledger: for every prompt family and label source, how many of the family's
-- prompts carry at least one label. Families nobody labelled show coverage 0.
create view coverage_ledger as
with labelled as (
    select source, prompt_id, count(*) as labels from label_votes group by source, prompt_id
), families as (
    select family, count(*) as prompts from prompt_families group by family
), per_family as (
    select f.family, l.source, count(*) as labelled_prompts, sum(l.labels) as labels
    from labelled l join prompt_families f using (prompt_id)
    group by f.family, l.source
)
select f.family, s.source, f.prompts,
       coalesce(p.labelled_prompts, 0) as labelled_prompts,
       coalesce(p.labels, 0) as labels,
       round(coalesce(p.labelled_prompts, 0) / f.prompts, 4) as coverage
from families f cross join (select unnest(['human', 'ai']) as source) s
left join per_family p on p.family = f.family and p.source = s.source
order by coverage, f.family, s.source;

-- Each annotator's latest vote per pair: a later label (or a later row of the same file) replaces an earlier one.
create view human_votes as
select pair_id, annotator, any_value(prompt_id) as prompt_id,
       arg_max(vote, (created_at, source_row)) as vote
from human_labels
group by pair_id, annotator;

-- Human-human agreement: for each two annotators who labelled the same pairs, the share of
-- pairs where they agree and Cohen's kappa over the votes first/second/tie; the '(all)'
-- row pools every annotator pair.
create view human_agreement as
with votes as materialized (
    select pair_id, annotator, vote from human_votes
), both_labelled as (
    select x.annotator as annotator_1, y.annotator as annotator_2, x.vote as vote_1, y.vote as vote_2
    from votes x join votes y on x.pair_id = y.pair_id and x.annotator < y.annotator
), stats as (
    select coalesce(annotator_1, '(all)') as annotator_1,
           coalesce(annotator_2, '(all)') as annotator_2,
           count(*) as pairs,
           avg((vote_1 = vote_2)::int) as agreement,
           avg((vote_1 = 'first')::int) * avg((vote_2 = 'first')::int)
             + avg((vote_1 = 'second')::int) * avg((vote_2 = 'second')::int)
             + avg((vote_1 = 'tie')::int) * avg((vote_2 = 'tie')::int) as expected_agreement
    from both_labelled
    group by grouping sets ((annotator_1, annotator_2), ())
    having count(*) > 0
)
select annotator_1, annotator_2, pairs,
       round(agreement, 4) as agreement,
       round(expected_agreement, 4) as expected_agreement,
       round((agreement - expected_agreement) / nullif(1 - expected_agreement, 0), 4) as cohen_kappa
from stats
order by annotator_1 = '(all)' desc, pairs desc, annotator_1, annotator_2;

-- Disagreements: pairs that two or more annotators labelled differently, most split first.
create view disagreements as
with split as (
    select pair_id,
           any_value(prompt_id) as prompt_id,
           count(*) as annotators,
           count(*) filter (where vote = 'first') as votes_first,
           count(*) filter (where vote = 'second') as votes_second,
           count(*) filter (where vote = 'tie') as votes_tie
    from human_votes
    group by pair_id
    having count(*) >= 2 and min(vote) <> max(vote)
)
select s.pair_id, s.prompt_id, coalesce(f.family, '(none)') as family, s.annotators,
       s.votes_first, s.votes_second, s.votes_tie,
       round(greatest(s.votes_first, s.votes_second, s.votes_tie) / s.annotators, 4) as majority_share
from split s left join prompt_families f using (prompt_id)
order by majority_share, s.annotators desc, s.pair_id;

-- Disagreement bench: the disagreements to read, with who voted what, the prompt and both
-- responses (in id order). Meant for browsing with a limit; `disagreements` has the counts.
create view disagreement_bench as
with ballots as (
    select v.pair_id, string_agg(v.annotator || '=' || v.vote, ', ' order by v.annotator) as votes
    from human_votes v semi join disagreements d using (pair_id)
    group by v.pair_id
), texts as (
    select pair_id,
           any_value(case when response_a_id < response_b_id then response_a else response_b end) as response_first,
           any_value(case when response_a_id < response_b_id then response_b else response_a end) as response_second
    from human_labels semi join disagreements using (pair_id)
    group by pair_id
)
select d.*, b.votes, f.text as prompt, t.response_first, t.response_second
from disagreements d join ballots b using (pair_id) join texts t using (pair_id)
left join prompt_families f using (prompt_id)
order by d.majority_share, d.annotators desc, d.pair_id;

-- Human majority per labelled pair: each annotator's latest vote counted; majority_vote is the
-- vote more annotators gave than any other (NULL when the top votes tie), majority_share the
-- top vote's share. A pair with one annotator has that annotator's vote as its majority.
create view human_majority as
with counts as (
    select pair_id, any_value(prompt_id) as prompt_id, count(*) as annotators,
           count(*) filter (where vote = 'first') as votes_first,
           count(*) filter (where vote = 'second') as votes_second,
           count(*) filter (where vote = 'tie') as votes_tie
    from human_votes
    group by pair_id
)
select pair_id, prompt_id, annotators, votes_first, votes_second, votes_tie,
       case when votes_first > greatest(votes_second, votes_tie) then 'first'
            when votes_second > greatest(votes_first, votes_tie) then 'second'
            when votes_tie > greatest(votes_first, votes_second) then 'tie'
       end as majority_vote,
       round(greatest(votes_first, votes_second, votes_tie) / annotators, 4) as majority_share
from counts;

-- Each AI label on a pair whose human majority is decisive ('first' or 'second'), without texts:
-- the AI vote and confidence (greatest(p_a, 1 - p_a)) beside the human majority; correct is
-- whether they match (an AI tie is a miss); confidence_bin is the tenth the confidence falls
-- in (5 = [0.5, 0.6) ... 9 = [0.9, 1.0]). The input of the AI-human agreement, calibration and
-- AI disagreement views.
create view ai_vs_human as
select a.label_id, a.pair_id, a.prompt_id, a.judge_model, a.method, a.principle_id,
       a.vote as ai_vote,
       greatest(a.p_a, 1 - a.p_a) as ai_confidence,
       least(floor(round(greatest(a.p_a, 1 - a.p_a) * 10, 6)), 9)::integer as confidence_bin,
       h.majority_vote as human_vote,
       h.annotators as human_annotators,
       a.vote = h.majority_vote as correct
from ai_labels a join human_majority h on a.pair_id = h.pair_id
where h.majority_vote in ('first', 'second');

-- AI-human agreement: how often AI labels match the human majority on pairs where it is decisive,
-- overall and per judge model, method, principle and prompt family (dimension, value). accuracy
-- counts an AI tie as a miss; Cohen's kappa is over the votes first/second/tie, with the
-- expected agreement from the AI's and the humans' vote shares, as in human_agreement.
create view ai_human_agreement as
with judged as materialized (
    select v.judge_model, v.method, coalesce(v.principle_id, '(none)') as principle,
           coalesce(f.family, '(none)') as family, v.pair_id, v.ai_vote, v.human_vote, v.correct
    from ai_vs_human v left join prompt_families f using (prompt_id)
), stats as (
    select case when grouping(judge_model) = 0 then 'judge_model'
                when grouping(method) = 0 then 'method'
                when grouping(principle) = 0 then 'principle'
                when grouping(family) = 0 then 'family'
                else 'overall' end as dimension,
           coalesce(judge_model, method, principle, family, '(all)') as value,
           count(*) as labels,
           count(distinct pair_id) as pairs,
           avg(correct::int) as accuracy,
           -- The human majority is never 'tie' here, so the tie term of the expected agreement is 0.
           avg((ai_vote = 'first')::int) * avg((human_vote = 'first')::int)
             + avg((ai_vote = 'second')::int) * avg((human_vote = 'second')::int) as expected_agreement
    from judged
    group by grouping sets ((), (judge_model), (method), (principle), (family))
    having count(*) > 0
)
select dimension, value, labels, pairs,
       round(accuracy, 4) as accuracy,
       round((accuracy - expected_agreement) / nullif(1 - expected_agreement, 0), 4) as cohen_kappa
from stats
order by list_position(['overall', 'judge_model', 'method', 'principle', 'family'], dimension),
         labels desc, value;

-- Position bias per judge model and method, over labels judged in both orders (rules excluded):
-- consistent_rate is the share whose two orders prefer the same response; first_position_rate
-- the share that preferred whichever response was shown first in both orders (p_a_first > 0.5
-- and p_a_second < 0.5), second_position_rate the reverse; mean_abs_order_gap the mean
-- |p_a_first - p_a_second|.
create view position_consistency as
select judge_model, method, count(*) as labels,
       round(avg(orders_agree::int), 4) as consistent_rate,
       round(avg((p_a_first > 0.5 and p_a_second < 0.5)::int), 4) as first_position_rate,
       round(avg((p_a_first < 0.5 and p_a_second > 0.5)::int), 4) as second_position_rate,
       round(avg(abs(p_a_first - p_a_second)), 4) as mean_abs_order_gap
from ai_labels
where p_a_first is not null and p_a_second is not null and method <> 'rule'
group by judge_model, method
order by judge_model, method;

-- Length bias: over decisive labels (first/second) on pairs whose responses differ in length
-- (characters), how often the longer response wins and the mean chosen/rejected length ratio,
-- per source, labeller (annotator or judge model) and method ('human' for people; each
-- annotator's latest vote), plus a pooled '(all)' row per source. Reads the response texts.
create view length_bias as
with human_lengths as (
    select pair_id,
           any_value(case when response_a_id < response_b_id then length(response_a) else length(response_b) end)
             as length_first,
           any_value(case when response_a_id < response_b_id then length(response_b) else length(response_a) end)
             as length_second
    from human_labels
    group by pair_id
), decisive as (
    select 'human' as source, v.annotator as labeller, 'human' as method, v.vote,
           l.length_first, l.length_second
    from human_votes v join human_lengths l using (pair_id)
    where v.vote <> 'tie'
    union all
    select 'ai', judge_model, method, vote,
           case when response_a_id < response_b_id then length(response_a) else length(response_b) end,
           case when response_a_id < response_b_id then length(response_b) else length(response_a) end
    from ai_labels
    where vote <> 'tie'
), sided as (
    select source, labeller, method,
           case when vote = 'first' then length_first else length_second end as chosen_length,
           case when vote = 'first' then length_second else length_first end as rejected_length
    from decisive
    where length_first <> length_second
), stats as (
    select source, labeller, method, grouping(labeller) as pooled,
           count(*) as labels,
           avg((chosen_length > rejected_length)::int) as longer_wins_rate,
           avg(chosen_length / nullif(rejected_length, 0)) as mean_length_ratio
    from sided
    group by grouping sets ((source, labeller, method), (source))
)
select source, coalesce(labeller, '(all)') as labeller, coalesce(method, '(all)') as method, labels,
       round(longer_wins_rate, 4) as longer_wins_rate,
       round(mean_length_ratio, 4) as mean_length_ratio
from stats
order by source, pooled desc, labels desc, labeller, method;

-- Calibration per judge model: AI labels on pairs with a decisive human majority, binned by
-- confidence (greatest(p_a, 1 - p_a)) into 0.5-0.6 ... 0.9-1.0 (1.0 in the last bin); accuracy
-- is the share matching the human majority, gap = mean_confidence - accuracy (positive: overconfident).
create view calibration as
with bins as (
    select judge_model, confidence_bin, count(*) as labels,
           avg(ai_confidence) as mean_confidence, avg(correct::int) as accuracy
    from ai_vs_human
    group by judge_model, confidence_bin
)
select judge_model,
       printf('%.1f-%.1f', confidence_bin / 10, (confidence_bin + 1) / 10) as bin,
       labels,
       round(mean_confidence, 4) as mean_confidence,
       round(accuracy, 4) as accuracy,
       round(mean_confidence - accuracy, 4) as gap
from bins
order by judge_model, confidence_bin;

-- Expected calibration error per judge model: the label-weighted mean of |mean_confidence - accuracy|
-- over the calibration view's bins (0 = perfectly calibrated), with the labels it rests on.
create view calibration_error as
with bins as (
    select judge_model, confidence_bin, count(*) as labels,
           avg(ai_confidence) as mean_confidence, avg(correct::int) as accuracy
    from ai_vs_human
    group by judge_model, confidence_bin
)
select judge_model, sum(labels)::bigint as labels,
       round(sum(labels * abs(mean_confidence - accuracy)) / sum(labels), 4) as ece
from bins
group by judge_model
order by judge_model;

-- AI disagreement bench: AI labels that prefer the other response than a decisive human majority
-- (AI ties are not listed), most confident first, with the prompt and both responses (in id
-- order). Meant for browsing with a limit.
create view ai_disagreement_bench as
with contradictions as (
    select * from ai_vs_human where ai_vote <> 'tie' and ai_vote <> human_vote
), texts as (
    select label_id,
           case when response_a_id < response_b_id then response_a else response_b end as response_first,
           case when response_a_id < response_b_id then response_b else response_a end as response_second
    from ai_labels semi join contradictions using (label_id)
)
select c.pair_id, coalesce(f.family, '(none)') as family, c.judge_model, c.method, c.principle_id,
       round(c.ai_confidence, 4) as ai_confidence, c.ai_vote, c.human_vote, c.human_annotators,
       f.text as prompt, t.response_first, t.response_second
from contradictions c join texts t using (label_id)
left join prompt_families f using (prompt_id)
order by c.ai_confidence desc, c.pair_id, c.judge_model, c.label_id;

-- Preference sets: per merged set, when it was made, its rows, how many rows each source
-- decided (human, human_majority, rule, ai), and the mean target and weight. Newest first.
create view preference_summary as
with per_set as (
    select set_id, min(created_at) as created_at, count(*) as rows,
           count(*) filter (where decided_by = 'human') as human,
           count(*) filter (where decided_by = 'human-majority') as human_majority,
           count(*) filter (where decided_by = 'rule') as rule,
           count(*) filter (where decided_by = 'ai') as ai,
           avg(target) as mean_target, avg(weight) as mean_weight
    from preferences
    group by set_id
)
select coalesce(s.set_id, p.set_id) as set_id,
       least(s.created_at, p.created_at) as created_at,
       coalesce(p.rows, 0) as rows,
       coalesce(p.human, 0) as human,
       coalesce(p.human_majority, 0) as human_majority,
       coalesce(p.rule, 0) as rule,
       coalesce(p.ai, 0) as ai,
       round(p.mean_target, 4) as mean_target,
       round(p.mean_weight, 4) as mean_weight
from preference_sets s full join per_set p on s.set_id = p.set_id
order by created_at desc, set_id;

-- What each pipeline stage has produced: rows per stage and model ('merge': pairs and rows
-- over every preference set).
create view stage_counts as
select 'prompts' as stage, null as model, count(distinct prompt_id) as items_in, count(distinct prompt_id) as rows_out
from prompts
union all
select 'generate', model, count(distinct prompt_id), count(*) from generations group by model
union all
select 'critique', model, count(distinct generation_id), count(*) from critiques group by model
union all
select 'label (human)', null, count(distinct pair_id), count(*) from human_labels
union all
select 'label (ai)', judge_model, count(distinct pair_id), count(*) from ai_labels group by judge_model
union all
select 'merge', null, count(distinct pair_id), count(*) from preferences;

-- Each flow run's latest state, with what it added.
create view run_summary as
select run_id, any_value(flow) as flow,
       min(created_at) as started_at,
       max(created_at) filter (where status <> 'started') as finished_at,
       arg_max(status, created_at) as status,
       arg_max(rows_added, created_at) as rows_added,
       arg_max(error, created_at) as error
from runs
group by run_id
order by started_at desc;

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

-- What each pipeline stage has produced: rows per stage and model.
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
select 'label (ai)', judge_model, count(distinct pair_id), count(*) from ai_labels group by judge_model;

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

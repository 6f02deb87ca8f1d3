-- Audit views over the store's tables. Each answers one audit question in plain SQL;
-- `charter sql "select * from <view>"` shows them, `charter audit` summarises them.

-- One family per conversation: the earliest non-empty family any prompt set gave it.
create view prompt_families as
select prompt_id,
       coalesce(arg_min(family, created_at) filter (where family is not null), '(none)') as family,
       arg_min(text, created_at) as text
from prompts
group by prompt_id;

-- Every label, human or AI, in one shape. `vote` is orientation-free: 'first' and 'second'
-- name the pair's responses in id order, so labels shown in either order compare directly.
create view labels as
with unified as (
    select label_id, 'human' as source, annotator as labeller, 'human' as method, pair_id, prompt_id,
           response_a_id, response_b_id, response_a, response_b, choice, preferred_id,
           confidence, null::varchar as principle_id, null::varchar as constitution_id, created_at
    from human_labels
    union all
    select label_id, 'ai', judge_model, method, pair_id, prompt_id,
           response_a_id, response_b_id, response_a, response_b, choice, preferred_id,
           greatest(p_a, 1 - p_a), principle_id, constitution_id, created_at
    from ai_labels
)
select u.*,
       case when preferred_id is null then 'tie'
            when preferred_id = least(response_a_id, response_b_id) then 'first'
            else 'second' end as vote,
       coalesce(f.family, '(none)') as family,
       length(response_a) as length_a,
       length(response_b) as length_b
from unified u left join prompt_families f using (prompt_id);

-- How many labels each source and labeller (annotator or judge model) contributed.
create view label_counts as
select source, labeller, count(*) as labels, count(distinct pair_id) as pairs,
       count(distinct prompt_id) as prompts, min(created_at) as first_label, max(created_at) as last_label
from labels
group by source, labeller
order by source, labels desc, labeller;

-- Coverage ledger: for every prompt family and label source, how many of the family's
-- prompts carry at least one label. Families nobody labelled show coverage 0.
create view coverage_ledger as
with families as (
    select family, count(*) as prompts from prompt_families group by family
), sources as (
    select unnest(['human', 'ai']) as source
), labelled as (
    select family, source, count(distinct prompt_id) as labelled_prompts, count(*) as labels
    from labels group by family, source
)
select f.family, s.source, f.prompts,
       coalesce(l.labelled_prompts, 0) as labelled_prompts,
       coalesce(l.labels, 0) as labels,
       round(coalesce(l.labelled_prompts, 0) / f.prompts, 4) as coverage
from families f cross join sources s
left join labelled l on l.family = f.family and l.source = s.source
order by coverage, f.family, s.source;

-- Each annotator's latest vote per pair (a re-label replaces an earlier one).
create view human_votes as
select pair_id, labeller as annotator, arg_max(vote, created_at) as vote,
       arg_max(confidence, created_at) as confidence
from labels
where source = 'human'
group by pair_id, labeller;

-- Human-human agreement: for each two annotators who labelled the same pairs, the share of
-- pairs where they agree and Cohen's kappa over the votes first/second/tie; the '(all)'
-- row pools every annotator pair.
create view human_agreement as
with both_labelled as (
    select x.pair_id, x.annotator as annotator_1, y.annotator as annotator_2, x.vote as vote_1, y.vote as vote_2
    from human_votes x join human_votes y on x.pair_id = y.pair_id and x.annotator < y.annotator
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

-- Disagreement bench: pairs that two or more annotators labelled differently, most split first.
create view disagreements as
with votes as (
    select pair_id,
           count(*) as annotators,
           count(*) filter (where vote = 'first') as votes_first,
           count(*) filter (where vote = 'second') as votes_second,
           count(*) filter (where vote = 'tie') as votes_tie,
           string_agg(annotator || '=' || vote, ', ' order by annotator) as votes
    from human_votes
    group by pair_id
    having count(*) >= 2 and count(distinct vote) > 1
), pair_text as (
    select pair_id, any_value(prompt_id) as prompt_id, any_value(family) as family,
           any_value(case when response_a_id < response_b_id then response_a else response_b end) as response_first,
           any_value(case when response_a_id < response_b_id then response_b else response_a end) as response_second
    from labels where source = 'human'
    group by pair_id
)
select v.pair_id, t.family, v.annotators, v.votes_first, v.votes_second, v.votes_tie,
       round(greatest(v.votes_first, v.votes_second, v.votes_tie) / v.annotators, 4) as majority_share,
       v.votes, f.text as prompt, t.response_first, t.response_second
from votes v join pair_text t using (pair_id) left join prompt_families f using (prompt_id)
order by majority_share, v.annotators desc, v.pair_id;

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

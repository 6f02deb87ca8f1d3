-- What each measured constitution edit (`charter constitution impact OLD NEW`, found in runs) did
-- to the AI labels, per principle and method: the labels under OLD's version of the principle,
-- how many were judged again under NEW's (the same pair, method, judge and settings; for rules
-- the same rule, checked again on every pair labelled under OLD), how many flipped, and the
-- judge's position consistency and agreement with people on those labels, before and after.
--
-- Columns:
--   old_constitution_id: the constitution the labels were made under (OLD)
--   new_constitution_id: the edited constitution (NEW)
--   principle_id: the principle
--   change: 'changed' (its hash differs), 'added' (only in NEW) or 'removed' (only in OLD)
--   method: 'logprob', 'cot' or 'rule'; NULL on the row of a principle without such labels
--   labels_before: labels under OLD's version of the principle (any constitution that holds it)
--   rejudged: of them, labels with a counterpart under NEW's version
--   not_rejudged: labels_before - rejudged: labels NEW no longer makes (principle removed, no
--     comparison left, family out of its tags, a rule that no longer decides) or another judge's
--   new_decisions: rule labels only under NEW, on pairs labelled under OLD (a rule that now decides)
--   flipped: re-judged labels whose vote changed
--   mean_abs_delta_p: mean |p_a after - p_a before| over the re-judged labels
--   consistent_before: share of the re-judged model labels whose two orders agreed, under OLD
--   consistent_after: the same share under NEW
--   human_pairs: distinct re-judged pairs with a decisive human majority (human_majority)
--   accuracy_before: share of the re-judged labels on those pairs that match the majority, under OLD
--   accuracy_after: the same share under NEW
--   kappa_before: Cohen's kappa of those labels against the majority under OLD, as in
--     ai_human_agreement
--   kappa_after: the same under NEW
create view impact as
with measured as (
    select distinct parameters::json ->> 'old_constitution_id' as old_id,
           parameters::json ->> 'new_constitution_id' as new_id
    from runs
    where flow = 'impact'
), old_principles as (
    select m.old_id, m.new_id, p.principle_id, p.principle_hash
    from measured m join principles p on p.constitution_id = m.old_id
), new_principles as (
    select m.old_id, m.new_id, p.principle_id, p.principle_hash
    from measured m join principles p on p.constitution_id = m.new_id
), edited as (
    select coalesce(o.old_id, n.old_id) as old_id, coalesce(o.new_id, n.new_id) as new_id,
           coalesce(o.principle_id, n.principle_id) as principle_id,
           o.principle_hash as old_hash, n.principle_hash as new_hash,
           case when o.principle_id is null then 'added'
                when n.principle_id is null then 'removed'
                else 'changed' end as change
    from old_principles o full join new_principles n
      on o.old_id = n.old_id and o.new_id = n.new_id and o.principle_id = n.principle_id
    where o.principle_hash is distinct from n.principle_hash
), old_pairs as (
    select distinct o.old_id, o.new_id, a.pair_id
    from old_principles o
    join ai_labels a on a.principle_id = o.principle_id and a.principle_hash = o.principle_hash
), versioned as (
    select e.old_id, e.new_id, e.principle_id, a.principle_hash = e.old_hash as under_old,
           a.label_id, a.pair_id, a.response_a_id, a.method, a.judge_model,
           coalesce(a.judge_backend, '') as judge_backend, coalesce(a.params, '') as params,
           coalesce(a.rule_id, '') as rule_id, a.vote, a.p_a, a.orders_agree
    from edited e
    join ai_labels a on a.principle_id = e.principle_id and a.principle_hash in (e.old_hash, e.new_hash)
    join old_pairs p on p.old_id = e.old_id and p.new_id = e.new_id and p.pair_id = a.pair_id
), compared as (
    select coalesce(b.old_id, n.old_id) as old_id, coalesce(b.new_id, n.new_id) as new_id,
           coalesce(b.principle_id, n.principle_id) as principle_id,
           coalesce(b.method, n.method) as method, coalesce(b.pair_id, n.pair_id) as pair_id,
           b.label_id as before_id, n.label_id as after_id,
           b.vote as before_vote, n.vote as after_vote,
           b.p_a as before_p, n.p_a as after_p,
           b.orders_agree as before_agree, n.orders_agree as after_agree
    from (select * from versioned where under_old) b
    full join (select * from versioned where not under_old) n
      on b.old_id = n.old_id and b.new_id = n.new_id and b.principle_id = n.principle_id
     and b.pair_id = n.pair_id and b.response_a_id = n.response_a_id and b.method = n.method
     and b.judge_model = n.judge_model and b.judge_backend = n.judge_backend
     and b.params = n.params and b.rule_id = n.rule_id
    -- A model label only under NEW is another label run's sample, not this edit's work.
    where b.label_id is not null or n.method = 'rule'
), judged as (
    select c.*, c.before_id is not null and c.after_id is not null as rejudged, h.majority_vote as human_vote
    from compared c
    left join human_majority h on h.pair_id = c.pair_id and h.majority_vote in ('first', 'second')
), scored as (
    select *, rejudged and human_vote is not null as on_human from judged
), stats as (
    select old_id, new_id, principle_id, method,
           count(before_id) as labels_before,
           count(*) filter (where rejudged) as rejudged,
           count(*) filter (where before_id is null) as new_decisions,
           count(*) filter (where rejudged and before_vote <> after_vote) as flipped,
           avg(abs(after_p - before_p)) filter (where rejudged) as mean_abs_delta_p,
           avg(before_agree::int) filter (where rejudged and method <> 'rule') as consistent_before,
           avg(after_agree::int) filter (where rejudged and method <> 'rule') as consistent_after,
           count(distinct pair_id) filter (where on_human) as human_pairs,
           avg((before_vote = human_vote)::int) filter (where on_human) as accuracy_before,
           avg((after_vote = human_vote)::int) filter (where on_human) as accuracy_after,
           -- The majority is never 'tie' here, so the tie term of the expected agreement is 0.
           avg((human_vote = 'first')::int) filter (where on_human) as human_first,
           avg((before_vote = 'first')::int) filter (where on_human) as before_first,
           avg((before_vote = 'second')::int) filter (where on_human) as before_second,
           avg((after_vote = 'first')::int) filter (where on_human) as after_first,
           avg((after_vote = 'second')::int) filter (where on_human) as after_second
    from scored
    group by old_id, new_id, principle_id, method
)
select e.old_id as old_constitution_id, e.new_id as new_constitution_id, e.principle_id, e.change,
       s.method,
       coalesce(s.labels_before, 0) as labels_before,
       coalesce(s.rejudged, 0) as rejudged,
       coalesce(s.labels_before - s.rejudged, 0) as not_rejudged,
       coalesce(s.new_decisions, 0) as new_decisions,
       coalesce(s.flipped, 0) as flipped,
       round(s.mean_abs_delta_p, 4) as mean_abs_delta_p,
       round(s.consistent_before, 4) as consistent_before,
       round(s.consistent_after, 4) as consistent_after,
       coalesce(s.human_pairs, 0) as human_pairs,
       round(s.accuracy_before, 4) as accuracy_before,
       round(s.accuracy_after, 4) as accuracy_after,
       round((s.accuracy_before - s.expected_before) / nullif(1 - s.expected_before, 0), 4) as kappa_before,
       round((s.accuracy_after - s.expected_after) / nullif(1 - s.expected_after, 0), 4) as kappa_after
from edited e
left join (
    select *, before_first * human_first + before_second * (1 - human_first) as expected_before,
           after_first * human_first + after_second * (1 - human_first) as expected_after
    from stats
) s using (old_id, new_id, principle_id)
order by e.old_id, e.new_id, e.principle_id, s.method;

-- Disagreement bench: the disagreements to read, with who voted what, the prompt and both
-- responses (in id order). Meant for browsing with a limit; `disagreements` has the counts.
--
-- Columns:
--   pair_id: the pair
--   prompt_id: its conversation
--   family: the conversation's family
--   annotators: annotators who voted on it
--   votes_first: votes for the first response (by id)
--   votes_second: votes for the second response
--   votes_tie: tie votes
--   majority_share: the top vote's share of the annotators
--   votes: each annotator's latest vote, as 'annotator=vote, ...'
--   prompt: the conversation's final user message
--   response_first: the text of the first response (by id)
--   response_second: the text of the second response
create view disagreement_bench as
with ballots as (
    -- Sorting each pair's (annotator, vote) list orders it by annotator (one vote each):
    -- cheaper than string_agg's ordered aggregate.
    select v.pair_id,
           array_to_string(list_transform(list_sort(list((v.annotator, v.vote))),
                                          lambda b: b[1] || '=' || b[2]), ', ') as votes
    from human_votes v semi join disagreements d using (pair_id)
    group by v.pair_id
), shown as (
    -- Every label of a pair repeats its texts (ids are hashes of them): the texts are read from
    -- one label, found without them, as any_value over the texts costs twice as much.
    select pair_id, min(label_id) as label_id
    from human_labels semi join disagreements using (pair_id)
    group by pair_id
), texts as (
    select s.pair_id,
           case when l.response_a_id < l.response_b_id then l.response_a else l.response_b end as response_first,
           case when l.response_a_id < l.response_b_id then l.response_b else l.response_a end as response_second
    from shown s join human_labels l using (label_id)
)
select d.*, b.votes, f.text as prompt, t.response_first, t.response_second
from disagreements d join ballots b using (pair_id) join texts t using (pair_id)
left join prompt_families f using (prompt_id)
order by d.majority_share, d.annotators desc, d.pair_id;

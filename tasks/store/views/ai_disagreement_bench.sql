-- AI disagreement bench: AI labels that prefer the other response than a decisive human
-- majority (AI ties are not listed), most confident first, with the prompt and both responses
-- (in id order). Meant for browsing with a limit.
--
-- Columns:
--   pair_id: the pair
--   family: the conversation's family
--   judge_model: the judge model ('rules' for rule labels)
--   method: 'logprob', 'cot' or 'rule'
--   principle_id: the principle it judged under
--   ai_confidence: greatest(p_a, 1 - p_a)
--   ai_vote: the AI's vote ('first' or 'second', responses in id order)
--   human_vote: the human majority vote it contradicts
--   human_annotators: annotators behind that majority
--   prompt: the conversation's final user message
--   response_first: the text of the first response (by id)
--   response_second: the text of the second response
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

-- Every label, human or AI, in one shape, with the responses, their lengths and the prompt family.
--
-- Columns:
--   label_id: the label
--   source: 'human' or 'ai'
--   labeller: the annotator, or the judge model ('rules' for rule labels)
--   method: 'human', or the AI method: 'logprob', 'cot' or 'rule'
--   pair_id: the pair labelled
--   prompt_id: its conversation
--   response_a_id: the response shown as A
--   response_b_id: the response shown as B
--   response_a: A's text
--   response_b: B's text
--   choice: 'a', 'b' or 'tie', as shown
--   preferred_id: the winning response (NULL for a tie)
--   vote: orientation-free: 'first' and 'second' name the pair's responses in id order, or 'tie'
--   confidence: the annotator's stated confidence; for AI labels greatest(p_a, 1 - p_a)
--   principle_id: the principle the AI judged under (NULL for people)
--   constitution_id: the constitution version it came from (NULL for people)
--   created_at: when the label was stored
--   family: the conversation's family (prompt_families)
--   length_a: characters in response A
--   length_b: characters in response B
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

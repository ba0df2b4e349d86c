-- Argo CD health check for cloudfront.invalidation.io/CloudFrontInvalidation.
-- Completed -> Healthy, Failed -> Degraded, anything else (no status yet, Pending, Queued,
-- InProgress, a phase this script does not know) -> Progressing, with the operator's message.
-- Argo CD runs it with gopher-lua (Lua 5.1): keep to Lua 5.1.
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the invalidation"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local phase = status.phase
local message = status.message
if phase == "Completed" then
  hs.status = "Healthy"
  message = message or "CloudFront completed the invalidation"
elseif phase == "Failed" then
  hs.status = "Degraded"
  local failed = condition(status, "Failed")
  if message == nil and failed ~= nil then
    message = failed.message
  end
  message = message or "The invalidation failed"
else
  hs.status = "Progressing"
  if phase == nil then
    message = message or "Waiting for the operator to pick up the invalidation"
  else
    message = message or ("Phase " .. phase)
  end
end
hs.message = message
return hs

// The OpenAPI 3 document of the server API. Kept by hand next to the route table in
// api.cpp (Api::Impl::build_routes); openapi_test.cpp checks that both list exactly the same routes (method,
// path, whether a token is needed), so they cannot drift apart.
#include "server/api.hpp"

namespace culvert::server {

const std::string& openapi_document() {
  static const std::string kDoc = R"JSON({
  "openapi": "3.0.3",
  "info": {
    "title": "Culvert orchestration server API",
    "version": "1",
    "description": "Metadata API of the Culvert server: projects, flows, flow runs, task runs, logs, agents and tokens. All bodies are JSON. Errors are {\"error\":{\"code\":\"...\",\"message\":\"...\"}} with 400 (malformed JSON, or arrays and objects nested deeper than 64 levels), 401 (no or bad token), 403 (scope), 404, 409 (state conflict), 413 (body too large), 422 (valid JSON, invalid content)."
  },
  "servers": [{"url": "http://127.0.0.1:4200"}],
  "security": [{"bearer": []}],
  "components": {
    "securitySchemes": {
      "bearer": {"type": "http", "scheme": "bearer", "description": "An API token. Scopes: admin ⊃ user ⊃ runner; run tokens act for one flow run."}
    },
    "parameters": {
      "id": {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}
    },
    "schemas": {
      "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
      "Project": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"}, "created": {"type": "string", "format": "date-time"}}},
      "Flow": {"type": "object", "description": "A flow version: the registered flow description (docs/FORMATS.md) plus server fields.", "properties": {"id": {"type": "string"}, "project_id": {"type": "string"}, "project": {"type": "string"}, "name": {"type": "string"}, "version": {"type": "integer"}, "archived": {"type": "boolean"}, "artifact": {"type": "object", "properties": {"uri": {"type": "string", "maxLength": 2048, "description": "file:///ABSOLUTE/PATH or s3://BUCKET/KEY; no control bytes, no . or .. path segment (422 otherwise)"}, "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}, "kind": {"type": "string", "enum": ["binary", "python", "python-package", "yaml"], "description": "what the artifact is: the registered description's artifact_kind (binary when it named none)"}}}, "labels": {"type": "array", "items": {"type": "string"}}, "schedule": {"type": "object", "nullable": true}, "schedule_active": {"type": "boolean"}, "max_run_retries": {"type": "integer"}, "tasks": {"type": "array", "items": {"type": "object"}}, "edges": {"type": "array", "items": {"type": "object"}}, "parameters": {"type": "array", "items": {"type": "object"}}, "run_config": {"type": "object"}}},
      "FlowRun": {"type": "object", "properties": {"id": {"type": "string"}, "flow_id": {"type": "string"}, "project_id": {"type": "string"}, "flow_name": {"type": "string"}, "flow_version": {"type": "integer"}, "parameters": {"type": "object"}, "labels": {"type": "array", "items": {"type": "string"}}, "idempotency_key": {"type": "string", "nullable": true}, "auto_scheduled": {"type": "boolean"}, "state": {"$ref": "#/components/schemas/State"}, "state_message": {"type": "string"}, "version": {"type": "integer", "description": "Pass back as expected_version."}, "run_count": {"type": "integer", "description": "The run's current attempt: its entries into Running so far (start_time and end_time are this attempt's)"}, "agent_id": {"type": "string", "nullable": true}, "created": {"type": "string", "format": "date-time"}, "state_changed_at": {"type": "string", "format": "date-time"}, "scheduled_start_time": {"type": "string", "format": "date-time"}, "submitted_at": {"type": "string", "format": "date-time", "nullable": true}, "start_time": {"type": "string", "format": "date-time", "nullable": true}, "end_time": {"type": "string", "format": "date-time", "nullable": true}, "heartbeat_at": {"type": "string", "format": "date-time", "nullable": true}, "run_config": {"type": "object", "nullable": true, "description": "the flow version's run config (null when it has none)"}, "infrastructure": {"allOf": [{"$ref": "#/components/schemas/Infrastructure"}], "nullable": true, "description": "what the run runs on, as its agent reported it; null until reported, and again when the run waits to be claimed anew"}}},
      "Infrastructure": {"type": "object", "required": ["kind", "id", "agent_id", "reported_at"], "properties": {"kind": {"type": "string", "description": "process, container, ecs-task, slurm-job, ..."}, "id": {"type": "string", "description": "the pid, container id, task ARN or job id"}, "agent_id": {"type": "string", "description": "the agent the run was on when it was reported"}, "reported_at": {"type": "string", "format": "date-time"}}},
      "State": {"type": "string", "enum": ["Scheduled", "Pending", "Submitted", "Running", "Retrying", "Cancelling", "Success", "Cached", "Skipped", "Failed", "TimedOut", "TriggerFailed", "Crashed", "Cancelled"]},
      "TaskRun": {"type": "object", "properties": {"id": {"type": "string"}, "flow_run_id": {"type": "string"}, "task": {"type": "string"}, "map_index": {"type": "integer"}, "state": {"$ref": "#/components/schemas/State"}, "message": {"type": "string"}, "attempts": {"type": "integer"}, "created": {"type": "string"}, "updated": {"type": "string"}, "start_time": {"type": "string", "nullable": true}, "end_time": {"type": "string", "nullable": true}, "next_start_time": {"type": "string", "nullable": true, "description": "a Retrying task run: when its next attempt starts"}, "run_attempt": {"type": "integer", "description": "the flow run's attempt that reported the task run last"}}},
      "FlowRunAttempt": {"type": "object", "properties": {"attempt": {"type": "integer", "minimum": 1}, "state": {"$ref": "#/components/schemas/State"}, "message": {"type": "string"}, "agent_id": {"type": "string", "nullable": true}, "start_time": {"type": "string", "format": "date-time"}, "end_time": {"type": "string", "format": "date-time", "nullable": true, "description": "null while the attempt goes on"}}},
      "TaskRunState": {"type": "object", "required": ["flow_run_id", "task", "state"], "properties": {"flow_run_id": {"type": "string"}, "task": {"type": "string"}, "map_index": {"type": "integer", "default": -1, "minimum": -1, "maximum": 999999}, "map_count": {"type": "integer", "default": 1, "minimum": 1, "maximum": 1000000, "description": "the item updates the task runs map_index .. map_index + map_count - 1 alike; map_index + map_count <= 1000000"}, "state": {"$ref": "#/components/schemas/State"}, "message": {"type": "string", "description": "cut to 16 KiB (then ending in '… [truncated from N bytes]')"}, "attempts": {"type": "integer"}, "timestamp": {"type": "string", "format": "date-time"}, "start_time": {"type": "string", "format": "date-time", "description": "when the task runs first went Running (kept if none is stored)"}, "next_start_time": {"type": "string", "format": "date-time", "description": "Retrying only: when the next attempt starts"}, "run_attempt": {"type": "integer", "minimum": 1, "maximum": 1000000, "description": "the flow run's attempt that sends the item, at most its run_count (422 otherwise); default: its current attempt. A later attempt's item replaces the task runs; an earlier attempt's is ignored"}}},
      "MappedTask": {"type": "object", "description": "The task runs of one mapped task (map_index >= 0), summed up", "properties": {"task": {"type": "string"}, "count": {"type": "integer", "description": "task runs"}, "max_map_index": {"type": "integer"}, "states": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "task runs per state name (states with none are absent)"}, "start_time": {"type": "string", "nullable": true, "description": "the earliest first Running"}, "end_time": {"type": "string", "nullable": true, "description": "the latest end, once every task run has ended"}, "updated": {"type": "string"}}},
      "LogLine": {"type": "object", "required": ["flow_run_id", "message"], "properties": {"flow_run_id": {"type": "string"}, "task_run_id": {"type": "string"}, "task": {"type": "string"}, "map_index": {"type": "integer"}, "level": {"type": "string", "enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]}, "message": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"}, "run_attempt": {"type": "integer", "minimum": 1, "maximum": 1000000, "description": "the flow run's attempt that wrote the line, at most its run_count (422 otherwise); default: its current attempt"}}},
      "LogRecord": {"allOf": [{"$ref": "#/components/schemas/LogLine"}, {"type": "object", "properties": {"id": {"type": "integer"}}}]},
      "Agent": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "type": {"type": "string", "enum": ["local", "docker", "ecs", "slurm"]}, "run_config_types": {"type": "array", "items": {"type": "string"}, "description": "the run-config types it launches, as its latest claim said (its type until then)"}, "labels": {"type": "array", "items": {"type": "string"}}, "max_concurrent": {"type": "integer", "nullable": true, "description": "the runs it takes at once (culvert agent start --max-concurrent), as it said when it registered; null when it did not say (an older agent)"}, "created": {"type": "string"}, "last_heartbeat": {"type": "string", "nullable": true}, "status": {"type": "string", "enum": ["live", "stopped"], "description": "stopped once deregistered, until it registers again"}, "stopped_at": {"type": "string", "nullable": true}, "health": {"type": "string", "enum": ["healthy", "unhealthy", "stopped"]}}},
      "Token": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "scope": {"type": "string", "enum": ["admin", "user", "runner", "run"]}, "flow_run_id": {"type": "string", "nullable": true}, "created": {"type": "string"}, "expires": {"type": "string", "nullable": true}, "revoked": {"type": "boolean"}, "revoked_at": {"type": "string", "nullable": true}}}
    },
    "responses": {
      "Error": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    }
  },
  "paths": {
    "/api/health": {
      "get": {"summary": "Liveness of the server", "security": [], "responses": {"200": {"description": "{\"status\":\"ok\",\"version\":\"...\"}"}}}
    },
    "/metrics": {
      "get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {}}}}}
    },
    "/api/v1/openapi.json": {
      "get": {"summary": "This API's OpenAPI document", "security": [], "responses": {"200": {"description": "This document"}}}
    },
    "/api/v1/projects": {
      "post": {"summary": "Create a project (scope user)", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "description": {"type": "string"}, "skip_if_exists": {"type": "boolean"}}}}}}, "responses": {"201": {"description": "The project", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Project"}}}}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}},
      "get": {"summary": "List projects (scope runner)", "responses": {"200": {"description": "{\"projects\":[Project]}"}}}
    },
    "/api/v1/flows": {
      "post": {"summary": "Register a flow version (scope user). Body: the flow description of docs/FORMATS.md plus project, artifact {uri, sha256}, optional artifact_kind (binary, python, python-package, yaml; default binary), idempotency_key and create_project (default true).", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["project", "name", "artifact"]}}}}, "responses": {"201": {"description": "The new (or, for a repeated idempotency_key, the earlier) version", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Flow"}}}}, "404": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}},
      "get": {"summary": "List flows (scope runner): latest versions unless all_versions=true", "parameters": [{"name": "project", "in": "query", "schema": {"type": "string"}, "description": "project name"}, {"name": "name", "in": "query", "schema": {"type": "string"}}, {"name": "all_versions", "in": "query", "schema": {"type": "boolean"}}, {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "the next_cursor of the page before"}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1000}, "description": "flows at most; above 1000 is taken as 1000, and a page also stops at about 4 MiB"}], "responses": {"200": {"description": "{\"flows\":[Flow] (without tasks and edges),\"next_cursor\":string or null on the last page}"}, "422": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flows/{id}": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "get": {"summary": "Get a flow version (scope runner, or the run token of a run of this version)", "responses": {"200": {"description": "The flow", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Flow"}}}}, "404": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flows/{id}/schedule": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "post": {"summary": "Pause or resume a flow's schedule (scope user)", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["active"], "properties": {"active": {"type": "boolean"}}}}}}, "responses": {"200": {"description": "The flow"}, "422": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flow-runs": {
      "post": {"summary": "Create a flow run (scope user). Parameters are checked against the flow's declared parameters; labels default to the flow's.", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {"flow_id": {"type": "string"}, "project": {"type": "string"}, "flow": {"type": "string"}, "parameters": {"type": "object"}, "labels": {"type": "array", "items": {"type": "string"}}, "idempotency_key": {"type": "string"}, "scheduled_start_time": {"type": "string", "format": "date-time"}}}}}}, "responses": {"201": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FlowRun"}}}}, "200": {"description": "An earlier run with the same idempotency_key"}, "404": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}},
      "get": {"summary": "List flow runs, newest first, with cursor pagination (scope runner); each item carries run_config and infrastructure", "parameters": [{"name": "flow_id", "in": "query", "schema": {"type": "string"}}, {"name": "project", "in": "query", "schema": {"type": "string"}}, {"name": "state", "in": "query", "schema": {"type": "array", "items": {"$ref": "#/components/schemas/State"}}, "style": "form", "explode": true, "description": "may repeat: runs in any of the states; an unknown state name is 422"}, {"name": "agent_id", "in": "query", "schema": {"type": "string"}, "description": "runs claimed by this agent"}, {"name": "label", "in": "query", "schema": {"type": "string"}, "description": "runs whose labels include this one"}, {"name": "created_after", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "runs created at or after this time"}, {"name": "created_before", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "runs created before this time"}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}}, {"name": "cursor", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "{\"runs\":[FlowRun],\"next_cursor\":string|null}"}}}
    },
    "/api/v1/flow-runs/{id}": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "get": {"summary": "Get a flow run (scope runner, or its run token)", "responses": {"200": {"description": "The run", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FlowRun"}}}}, "404": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flow-runs/{id}/state": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "post": {"summary": "Set a flow run's state (scope runner, or its run token). Illegal transitions and a stale expected_version are refused with 409.", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["state"], "properties": {"state": {"$ref": "#/components/schemas/State"}, "message": {"type": "string"}, "expected_version": {"type": "integer"}, "scheduled_start_time": {"type": "string", "format": "date-time"}}}}}}, "responses": {"200": {"description": "The run after the change"}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flow-runs/{id}/heartbeat": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "post": {"summary": "Flow run heartbeat (scope runner, or its run token); the answer shows e.g. Cancelling", "responses": {"200": {"description": "The run"}}}
    },
    "/api/v1/flow-runs/{id}/cancel": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "post": {"summary": "Cancel a flow run (scope user): Submitted/Running become Cancelling, waiting runs Cancelled", "responses": {"200": {"description": "The run"}, "409": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flow-runs/{id}/retry": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "post": {"summary": "Retry a finished flow run (scope user): forced back to Scheduled, due now; start_time and end_time are cleared (the ended attempt keeps them) and the next Running begins attempt run_count + 1", "responses": {"200": {"description": "The run"}, "409": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flow-runs/{id}/history": {
      "parameters": [{"$ref": "#/components/parameters/id"}, {"name": "after", "in": "query", "schema": {"type": "integer"}, "description": "the next_cursor of the page before (default 0: from the start)"}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1000}, "description": "changes at most; above 1000 is taken as 1000, and a page also stops at about 4 MiB"}],
      "get": {"summary": "A flow run's state history, oldest first, in pages (scope runner, or its run token)", "responses": {"200": {"description": "{\"history\":[{id,flow_run_id,from_state,state,message,version,forced,agent_id,timestamp}],\"next_cursor\":string (empty on the last page)}"}}}
    },
    "/api/v1/flow-runs/{id}/attempts": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "get": {"summary": "A flow run's attempts, attempt 1 first, each with its own start and end, the state it ended in and its agent (scope runner, or its run token)", "responses": {"200": {"description": "{\"attempts\":[FlowRunAttempt]}", "content": {"application/json": {"schema": {"type": "object", "properties": {"attempts": {"type": "array", "items": {"$ref": "#/components/schemas/FlowRunAttempt"}}}}}}}, "404": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flow-runs/{id}/diagnosis": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "get": {"summary": "Why a flow run has not been claimed: agents, their health, missing labels and whether they launch the run's run-config type (scope runner)", "responses": {"200": {"description": "{\"reason\":string,\"run_config_type\":string|null,\"agents\":[{id,name,health,labels,missing_labels,run_config_types,type_mismatch,can_take}]}; type_mismatch reads e.g. \"agent a1 launches docker; run needs local\""}}}
    },
    "/api/v1/flow-runs/{id}/infrastructure": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "post": {"summary": "Report what runs a flow run (the token of the agent the run is on, or the run's own run token; others 403). Replaces an earlier report.", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["kind", "id"], "properties": {"kind": {"type": "string", "maxLength": 32, "pattern": "^[a-z0-9-]+$", "description": "process, container, ecs-task, slurm-job, ..."}, "id": {"type": "string", "maxLength": 1024, "description": "the pid, container id, task ARN or job id; no control characters"}}}}}}, "responses": {"200": {"description": "The run, with its infrastructure", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FlowRun"}}}}, "403": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flow-runs/{id}/task-runs": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "get": {"summary": "A flow run's tasks, a page in task-name order: each unmapped task's task run, and for each mapped task a summary (its task runs counted by state). With task=T: T's task runs, a page in map-index order. A page stops at limit or at about 4 MiB, and next_cursor (null on the last page) given as cursor goes on (scope runner, or its run token)", "parameters": [{"name": "task", "in": "query", "schema": {"type": "string"}, "description": "list this task's task runs (elements of a mapped task) instead of the tasks"}, {"name": "state", "in": "query", "schema": {"$ref": "#/components/schemas/State"}, "description": "with task: only task runs in this state"}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 100}, "description": "tasks (or with task, task runs) per page; above 1000 is taken as 1000"}, {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page"}], "responses": {"200": {"description": "{\"task_runs\":[TaskRun],\"mapped_tasks\":[MappedTask] (without task),\"next_cursor\":string|null}"}, "422": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flow-runs/{id}/task-runs/history": {
      "parameters": [{"$ref": "#/components/parameters/id"}, {"name": "after", "in": "query", "schema": {"type": "integer"}}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1000}, "description": "entries at most; above 1000 is taken as 1000, and a page also stops at about 4 MiB"}],
      "get": {"summary": "The task runs' history: every Retrying state with its reason and next start time, in id order (scope runner, or its run token)", "responses": {"200": {"description": "{\"history\":[{id,task,map_index,map_count,run_attempt,attempts,state,message,timestamp,next_start_time}],\"next_cursor\":string}"}}}
    },
    "/api/v1/task-runs/states": {
      "post": {"summary": "Report task-run states, a batch applied all or nothing (scope runner, or a run token for its own run)", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/TaskRunState"}}}}}, "responses": {"200": {"description": "{\"task_run_ids\":[string]}: per item, the id of its first task run"}, "422": {"description": "invalid content, or an item naming a task that the run's flow version does not have, or a map_index (map_count above 1) on a task that is not mapped there; the message names the item and the task", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}
    },
    "/api/v1/logs": {
      "post": {"summary": "Append log lines, a batch (scope runner, or a run token for its own run)", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/LogLine"}}}}}, "responses": {"201": {"description": "{\"ids\":[integer]}"}, "413": {"description": "the batch would take a flow run past its log quota (the server's --max-log-bytes-per-run, default 128 MiB of messages over all its lines); nothing was written", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}, "422": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flow-runs/{id}/logs": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "get": {"summary": "Read a flow run's logs after a cursor; waits up to wait_ms for new lines unless the run is final (scope runner, or its run token)", "parameters": [{"name": "after", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous answer; 0 or absent for the start"}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1000}, "description": "lines at most; above 1000 is taken as 1000, and a page also stops at about 4 MiB"}, {"name": "wait_ms", "in": "query", "schema": {"type": "integer", "minimum": 0}}, {"name": "run_attempt", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000000}, "description": "only this attempt's lines; absent: every attempt's"}], "responses": {"200": {"description": "{\"logs\":[LogRecord],\"next_cursor\":string (the after of the next read),\"more\":boolean (true: the page stopped at its limit or byte cap and more lines are there; read on at once),\"flow_run_state\":State}"}}}
    },
    "/api/v1/agents": {
      "post": {"summary": "Register an agent (scope runner); re-registering a name updates it (live again if it was stopped). The agent is bound to the registering token: a name registered by another token that is still valid is 409.", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "type": {"type": "string", "enum": ["local", "docker", "ecs", "slurm"]}, "labels": {"type": "array", "items": {"type": "string"}}, "max_concurrent": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "the runs it takes at once; optional (an older agent does not send it)"}}}}}}, "responses": {"201": {"description": "The agent, with its id", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Agent"}}}}, "409": {"$ref": "#/components/responses/Error"}}},
      "get": {"summary": "List agents with health (scope runner)", "responses": {"200": {"description": "{\"agents\":[Agent]}"}}}
    },
    "/api/v1/agents/{id}": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "delete": {"summary": "Deregister an agent (the token that registered it, or an admin token; others 403): listed with status stopped, never healthy, claiming nothing until it registers again", "responses": {"200": {"description": "The agent", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Agent"}}}}, "403": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/agents/{id}/heartbeat": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "post": {"summary": "Agent heartbeat (the token that registered the agent; others 403; a stopped agent 409)", "responses": {"200": {"description": "{\"id\":string,\"health\":\"healthy\"}"}, "403": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/agents/{id}/claim": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "post": {"summary": "Claim due flow runs whose labels the agent covers and whose run-config type it launches (or that have none); waits up to wait_ms for work (the token that registered the agent; others 403; a stopped agent 409). Each run comes with a run token, shown only here.", "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"max": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1}, "wait_ms": {"type": "integer", "minimum": 0, "default": 0}, "types": {"type": "array", "minItems": 1, "maxItems": 16, "items": {"type": "string", "enum": ["local", "docker", "ecs", "slurm"]}, "description": "the run-config types the agent launches; default: its registered type"}}}}}}, "responses": {"200": {"description": "{\"runs\":[FlowRun + {\"token\":string}]}, now Submitted to this agent"}, "403": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/dashboard": {
      "get": {"summary": "The web UI's dashboard (scope runner): runs created since a time by state, late runs, recent failures, agents with health and runs in flight", "parameters": [{"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "default: 24 hours ago"}, {"name": "late_after_seconds", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 30}, "description": "a Scheduled or Pending run is late once this far past its scheduled start"}], "responses": {"200": {"description": "{\"now\",\"since\",\"runs_by_state\":{State: count},\"runs_total\",\"late\":{\"after_seconds\",\"count\",\"runs\":[FlowRun] (the 20 earliest due)},\"recent_failures\":[FlowRun] (the 20 newest Failed, Crashed or TimedOut since),\"agents\":[Agent + \"in_flight\": runs Submitted, Running or Cancelling on it],\"heartbeat_interval_seconds\",\"missed_heartbeats\"}"}, "422": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/flows/{id}/fire-times": {
      "get": {"summary": "A flow version's next scheduled fire times (scope runner), computed as the schedule service does", "parameters": [{"$ref": "#/components/parameters/id"}, {"name": "count", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5}}], "responses": {"200": {"description": "{\"flow_id\",\"schedule\":bool,\"active\":bool,\"timezone\":string|null (the schedule's IANA zone),\"fire_times\":[RFC 3339, UTC] (empty without a schedule)}"}, "404": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/session": {
      "get": {"summary": "The calling token (scope runner, or a run token): its id, name, scope and expiry, for clients that adapt to the scope", "responses": {"200": {"description": "{\"token_id\",\"name\",\"scope\":\"admin|user|runner|run\",\"expires\":string|null,\"flow_run_id\":string|null}"}}}
    },
    "/api/v1/tokens": {
      "post": {"summary": "Create an API token (scope admin); the secret is shown only in this answer", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name", "scope"], "properties": {"name": {"type": "string"}, "scope": {"type": "string", "enum": ["admin", "user", "runner"]}, "expires": {"type": "string", "description": "a duration (30d, 12h) or an RFC 3339 time"}}}}}}, "responses": {"201": {"description": "Token metadata plus {\"token\":string}"}}},
      "get": {"summary": "List API tokens (scope admin); run tokens only with include_run=true", "parameters": [{"name": "include_run", "in": "query", "schema": {"type": "boolean"}}], "responses": {"200": {"description": "{\"tokens\":[Token]}"}}}
    },
    "/api/v1/tokens/{id}": {
      "parameters": [{"$ref": "#/components/parameters/id"}],
      "delete": {"summary": "Revoke an API token (scope admin). The last unexpired admin token cannot be revoked (409); `culvert server create-admin-token` mints one from the database.", "responses": {"200": {"description": "{\"id\":string,\"revoked\":true}"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}}
    }
  }
})JSON";
  return kDoc;
}

}  // namespace culvert::server

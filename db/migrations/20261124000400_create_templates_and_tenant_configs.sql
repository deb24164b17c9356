-- migrate:up
/*
 * Why: tenants start from an industry template (the platform-wide catalog)
 * and then own one configuration row each. Creating a tenant and seeding its
 * configuration is one platform operation, so platform.create_tenant lives
 * here, beside the configuration it seeds.
 */
-- Fail fast instead of queueing behind long transactions on a live server.
set local lock_timeout = '5s';
set local statement_timeout = '60s';
create table core.templates (
  template_id uuid primary key default gen_random_uuid(),
  name text not null unique check (char_length(name) between 1 and 200),
  industry text not null check (char_length(industry) between 1 and 100),
  description text not null default '' check (char_length(description) <= 2000),
  default_config jsonb not null default '{}' check (jsonb_typeof(default_config) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table core.templates is 'Platform-wide catalog of starting configurations; not tenant-scoped';
comment on column core.templates.template_id is 'Identity of the template';
comment on column core.templates.name is 'Unique display name, e.g. Fintech Template';
comment on column core.templates.industry is 'Industry the template is made for';
comment on column core.templates.description is 'What the template sets up, for people choosing one';
comment on column core.templates.default_config is 'Settings copied into a tenant configuration created from this template';
comment on column core.templates.created_at is 'When the template was added';
comment on column core.templates.updated_at is 'When the row last changed (maintained by trigger)';

create trigger set_updated_at before update on core.templates
  for each row execute function core.set_updated_at();

insert into core.templates (name, industry, description, default_config) values (
  'Fintech Template',
  'fintech',
  'Defaults for regulated financial services: long audit retention, strict key lifetimes, two-person approval',
  '{"audit_retention_days": 2555, "api_key_max_lifetime_days": 90, "require_two_person_approval": true,
    "currency": "EUR", "data_residency": "eu"}'
);

grant select on core.templates to app_user, uber_admin;

create view api.templates with (security_invoker = true) as
  select template_id, name, industry, description, default_config, created_at, updated_at
  from core.templates;
comment on view api.templates is 'The template catalog, readable by every tenant';
grant select on api.templates to app_user, uber_admin;

create table core.tenant_configs (
  tenant_id uuid primary key references core.tenants (tenant_id),
  template_id uuid references core.templates (template_id),
  settings jsonb not null default '{}' check (jsonb_typeof(settings) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table core.tenant_configs is 'One configuration row per tenant';
comment on column core.tenant_configs.tenant_id is 'Tenant the configuration belongs to';
comment on column core.tenant_configs.template_id is 'Template the configuration was seeded from, if any';
comment on column core.tenant_configs.settings is 'Tenant settings as a JSON object';
comment on column core.tenant_configs.created_at is 'When the configuration was created';
comment on column core.tenant_configs.updated_at is 'When the row last changed (maintained by trigger)';

create index tenant_configs_template_id_idx on core.tenant_configs (template_id);

create trigger set_updated_at before update on core.tenant_configs
  for each row execute function core.set_updated_at();
create trigger record_audit after insert or update or delete on core.tenant_configs
  for each row execute function core.record_audit('tenant_id');

alter table core.tenant_configs enable row level security;
alter table core.tenant_configs force row level security;

create policy select_own_tenant on core.tenant_configs for select
  using (tenant_id = (select core.current_tenant_id()));
create policy insert_own_tenant on core.tenant_configs for insert
  with check (tenant_id = (select core.current_tenant_id()));
create policy update_own_tenant on core.tenant_configs for update
  using (tenant_id = (select core.current_tenant_id()))
  with check (tenant_id = (select core.current_tenant_id()));
create policy delete_own_tenant on core.tenant_configs for delete
  using (tenant_id = (select core.current_tenant_id()));

grant select, update (settings) on core.tenant_configs to app_user;
grant select, insert (tenant_id, template_id, settings) on core.tenant_configs to uber_admin;

create view api.tenant_config with (security_invoker = true) as
  select tenant_id, template_id, settings, created_at, updated_at
  from core.tenant_configs;
comment on view api.tenant_config is 'Configuration of the current tenant: one row, or none without context';
grant select on api.tenant_config to app_user;

create function api.update_tenant_config(p_settings_patch jsonb) returns setof api.tenant_config
language sql volatile
as $$
  -- A JSON merge patch of the top level: keys set to null are removed;
  -- nulls nested inside a value are kept as sent.
  update core.tenant_configs
  set settings = (settings || p_settings_patch)
    - array(select key from jsonb_each(p_settings_patch) where value = 'null'::jsonb)
  where tenant_id = (select core.current_tenant_id())
  returning tenant_id, template_id, settings, created_at, updated_at
$$;
comment on function api.update_tenant_config(jsonb) is
  'Merges a JSON object into the current tenant''s settings; a key set to null is removed';
grant execute on function api.update_tenant_config(jsonb) to app_user;

create function platform.create_tenant(
  p_name text,
  p_domain text default null,
  p_subscription_tier text default 'free',
  p_template_name text default null
) returns setof platform.tenants
language plpgsql volatile
as $$
declare
  v_tenant_id uuid;
  v_template core.templates;
begin
  if p_template_name is not null then
    select * into v_template from core.templates where name = p_template_name;
    if not found then
      raise exception 'unknown template "%"', p_template_name
        using errcode = 'no_data_found', hint = 'list templates with GET /v1/templates';
    end if;
  end if;

  insert into core.tenants (name, domain, subscription_tier)
  values (p_name, p_domain, coalesce(p_subscription_tier, 'free'))
  returning tenant_id into v_tenant_id;

  insert into core.tenant_configs (tenant_id, template_id, settings)
  values (v_tenant_id, v_template.template_id, coalesce(v_template.default_config, '{}'));

  return query select * from platform.tenants where tenant_id = v_tenant_id;
end
$$;
comment on function platform.create_tenant(text, text, text, text) is
  'Provisions a tenant and its configuration, seeded from the named template when given';
grant execute on function platform.create_tenant(text, text, text, text) to uber_admin;

-- migrate:down
set local lock_timeout = '5s';
set local statement_timeout = '60s';
drop function platform.create_tenant(text, text, text, text);
drop function api.update_tenant_config(jsonb);
drop view api.tenant_config;
drop table core.tenant_configs;
drop view api.templates;
drop table core.templates;

#include "aws/query_client.hpp"

#include <pugixml.hpp>

#include "aws/signed_post.hpp"
#include "aws/sigv4.hpp"

namespace culvert::aws {

std::string form_encode(const QueryParams& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += uri_encode(k, false) + "=" + uri_encode(v, false);
  }
  return out;
}

AwsQueryClient::AwsQueryClient(QueryServiceConfig config) : cfg_(std::move(config)) {
  if (!cfg_.clock) cfg_.clock = &system_clock();
  if (!cfg_.random) cfg_.random = &secure_random_;
  if (!cfg_.transport) cfg_.transport = &curl_transport();
  if (cfg_.max_attempts < 1) cfg_.max_attempts = 1;
  endpoint_ = detail::service_endpoint(cfg_.service, cfg_.region, cfg_.endpoint);
}

Result<std::string> AwsQueryClient::call(std::string_view action, const QueryParams& params, AwsError* error) {
  detail::PostTarget t{.service = cfg_.service, .region = cfg_.region, .endpoint = endpoint_,
                       .credentials = cfg_.credentials.get(), .transport = cfg_.transport, .clock = cfg_.clock,
                       .random = cfg_.random, .random_mu = &random_mu_, .max_attempts = cfg_.max_attempts,
                       .base_backoff = cfg_.base_backoff, .max_backoff = cfg_.max_backoff,
                       .timeout_ms = cfg_.timeout_ms};
  QueryParams all = {{"Action", std::string(action)}, {"Version", cfg_.api_version}};
  all.insert(all.end(), params.begin(), params.end());
  const HeaderList headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  return detail::signed_post(t, cfg_.service + " " + std::string(action), headers, form_encode(all), error);
}

namespace {

// The <item>s of <set> directly under the answer's root element.
std::vector<pugi::xml_node> items(const pugi::xml_document& doc, const char* set) {
  std::vector<pugi::xml_node> out;
  for (pugi::xml_node item : doc.document_element().child(set).children("item")) out.push_back(item);
  return out;
}

Result<pugi::xml_document> parse(const std::string& xml, std::string_view what) {
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size()) || !doc.document_element())
    return unavailable("ec2 " + std::string(what) + ": the answer is not XML");
  return doc;
}

}  // namespace

Result<std::vector<std::string>> default_vpc_subnets(AwsQueryClient& ec2, std::string* vpc_id) {
  auto vpcs = ec2.call("DescribeVpcs", {{"Filter.1.Name", "is-default"}, {"Filter.1.Value.1", "true"}});
  if (!vpcs) return vpcs.status();
  auto vdoc = parse(*vpcs, "DescribeVpcs");
  if (!vdoc) return vdoc.status();
  std::string vpc;
  for (const auto& item : items(*vdoc, "vpcSet"))
    if (*item.child_value("vpcId")) vpc = item.child_value("vpcId");
  if (vpc.empty()) return not_found("the region has no default VPC");
  if (vpc_id) *vpc_id = vpc;
  auto subnets = ec2.call("DescribeSubnets", {{"Filter.1.Name", "vpc-id"}, {"Filter.1.Value.1", vpc}});
  if (!subnets) return subnets.status();
  auto sdoc = parse(*subnets, "DescribeSubnets");
  if (!sdoc) return sdoc.status();
  std::vector<std::string> first, rest;
  for (const auto& item : items(*sdoc, "subnetSet")) {
    std::string id = item.child_value("subnetId");
    if (id.empty()) continue;
    (std::string_view(item.child_value("defaultForAz")) == "true" ? first : rest).push_back(id);
  }
  first.insert(first.end(), rest.begin(), rest.end());
  if (first.empty()) return not_found("the default VPC " + vpc + " has no subnets");
  if (first.size() > 16) first.resize(16);  // RunTask takes at most 16
  return first;
}

}  // namespace culvert::aws

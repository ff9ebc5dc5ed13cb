#include "runtime/answers.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace culvert::runtime {
namespace {

using nlohmann::json;

TEST(DecodeFlowDescription, StorageMayBeAbsentNullEmptyOrAString) {
  // A flow that never calls flow.storage() describes itself with "storage": null.
  for (const char* text : {R"({"name":"f"})", R"({"name":"f","storage":null})", R"({"name":"f","storage":""})"}) {
    auto d = decode_flow_description(text);
    ASSERT_TRUE(d) << text << ": " << d.status().message();
    EXPECT_EQ(d->name, "f");
    EXPECT_FALSE(d->storage.has_value()) << text;
  }
  json doc;
  auto d = decode_flow_description(R"({"name":"f","storage":"file:///d","tasks":[]})", &doc);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->storage, "file:///d");
  EXPECT_TRUE(doc.contains("tasks"));
}

TEST(DecodeFlowDescription, MalformedDescriptionsAreInvalidArgumentsNamingTheField) {
  struct Case {
    std::string text;
    std::string expected;  // a part of the message
  };
  const Case cases[] = {
      {"", "not a JSON object"},
      {"not json", "not a JSON object"},
      {"[1,2]", "not a JSON object"},
      {"\"etl\"", "not a JSON object"},
      {"{}", "\"name\""},
      {R"({"name":null})", "\"name\""},
      {R"({"name":""})", "\"name\""},
      {R"({"name":7})", "\"name\""},
      {R"({"name":"f","storage":7})", "\"storage\" must be a string, but is number"},
      {R"({"name":"f","storage":{"uri":"file:///d"}})", "\"storage\" must be a string, but is object"},
      {R"({"name":"f","storage":["file:///d"]})", "\"storage\" must be a string, but is array"},
      {std::string(kMaxDescriptionBytes + 1, ' '), "at most"},
  };
  for (const auto& c : cases) {
    auto d = decode_flow_description(c.text);
    ASSERT_FALSE(d) << c.text.substr(0, 80);
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << c.text.substr(0, 80);
    EXPECT_NE(d.status().message().find(c.expected), std::string::npos)
        << c.text.substr(0, 80) << " -> " << d.status().message();
  }
}

TEST(DecodeFlowRun, ReadsStateNameAndParametersAsText) {
  auto r = decode_flow_run(json::parse(
      R"({"id":"r1","state":"Running","flow_name":"etl","parameters":{"n":7,"who":"ann","on":true,"l":[1]},"extra":{}})"));
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->id, "r1");
  EXPECT_EQ(r->state, "Running");
  EXPECT_EQ(r->flow_name, "etl");
  EXPECT_EQ(r->parameters.at("n"), "7");
  EXPECT_EQ(r->parameters.at("who"), "ann");
  EXPECT_EQ(r->parameters.at("on"), "true");
  EXPECT_EQ(r->parameters.at("l"), "[1]");
  EXPECT_EQ(r->run_count, 0);  // not said
  EXPECT_EQ(r->state_message, "");  // not said
  auto cancelling = decode_flow_run(
      json::parse(R"j({"state":"Cancelling","state_message":"cancel requested by alice (user token)"})j"));
  ASSERT_TRUE(cancelling) << cancelling.status().message();
  EXPECT_EQ(cancelling->state_message, "cancel requested by alice (user token)");
  EXPECT_FALSE(decode_flow_run(json::parse(R"({"state":"Cancelling","state_message":7})")));
  auto counted = decode_flow_run(json::parse(R"({"state":"Running","run_count":2})"));
  ASSERT_TRUE(counted) << counted.status().message();
  EXPECT_EQ(counted->run_count, 2);
  auto bare = decode_flow_run(json::parse(R"({"state":"Scheduled","flow_name":null,"parameters":null})"));
  ASSERT_TRUE(bare) << bare.status().message();
  EXPECT_EQ(bare->flow_name, "");
  EXPECT_TRUE(bare->parameters.empty());
}

TEST(DecodeFlowRun, MalformedAnswersAreErrorsNamingTheField) {
  struct Case {
    const char* answer;
    const char* expected;
  };
  const Case cases[] = {
      {"[]", "not a JSON object, but array"},
      {"null", "not a JSON object, but null"},
      {"\"Running\"", "not a JSON object, but string"},
      {"{}", "no \"state\""},
      {R"({"state":null})", "no \"state\""},
      {R"({"state":""})", "no \"state\""},
      {R"({"state":7})", "\"state\" must be a string, but is number"},
      {R"({"state":["Running"]})", "\"state\" must be a string, but is array"},
      {R"({"state":"Running","flow_name":42})", "\"flow_name\" must be a string, but is number"},
      {R"({"state":"Running","id":{}})", "\"id\" must be a string, but is object"},
      {R"({"state":"Running","flow_id":3})", "\"flow_id\" must be a string, but is number"},
      {R"({"state":"Running","parameters":"n=1"})", "\"parameters\" must be an object, but is string"},
      {R"({"state":"Running","parameters":[1]})", "\"parameters\" must be an object, but is array"},
      {R"({"state":"Running","run_count":"2"})", "\"run_count\" must be an integer from 0 to 1000000, but is string"},
      {R"({"state":"Running","run_count":-1})", "\"run_count\" must be an integer from 0 to 1000000, but is -1"},
  };
  for (const auto& c : cases) {
    auto r = decode_flow_run(json::parse(c.answer));
    ASSERT_FALSE(r) << c.answer;
    EXPECT_EQ(r.status().code(), StatusCode::kInternal) << c.answer;
    EXPECT_NE(r.status().message().find(c.expected), std::string::npos) << c.answer << " -> " << r.status().message();
  }
}

TEST(DecodeRegisteredFlow, ReadsIdNameAndVersion) {
  auto f = decode_registered_flow(json::parse(R"({"id":"f1","name":"etl","version":3,"labels":[]})"));
  ASSERT_TRUE(f) << f.status().message();
  EXPECT_EQ(f->id, "f1");
  EXPECT_EQ(f->name, "etl");
  EXPECT_EQ(f->version, 3);
  EXPECT_EQ(json::parse(f->json)["labels"], json::array());
}

TEST(DecodeRegisteredFlow, MalformedAnswersAreErrorsNamingTheField) {
  struct Case {
    const char* answer;
    const char* expected;
  };
  const Case cases[] = {
      {"[]", "not a JSON object"},
      {"{}", "\"id\""},
      {R"({"id":null,"version":1})", "\"id\""},
      {R"({"id":5,"version":1})", "\"id\" must be a string, but is number"},
      {R"({"id":"f1"})", "\"version\" must be an integer, but is missing"},
      {R"({"id":"f1","version":"3"})", "\"version\" must be an integer, but is string"},
      {R"({"id":"f1","version":1.5})", "\"version\" must be an integer, but is number"},
      {R"({"id":"f1","version":null})", "\"version\" must be an integer, but is null"},
      {R"({"id":"f1","version":1,"name":[]})", "\"name\" must be a string, but is array"},
  };
  for (const auto& c : cases) {
    auto f = decode_registered_flow(json::parse(c.answer));
    ASSERT_FALSE(f) << c.answer;
    EXPECT_NE(f.status().message().find(c.expected), std::string::npos) << c.answer << " -> " << f.status().message();
  }
}

TEST(DecodeFlowArtifact, ReadsUriAndHashOrNamesWhatIsWrong) {
  auto a = decode_flow_artifact(json::parse(R"({"id":"f1","artifact":{"uri":"file:///a/b","sha256":"ab12"}})"));
  ASSERT_TRUE(a) << a.status().message();
  EXPECT_EQ(a->uri, "file:///a/b");
  EXPECT_EQ(a->sha256, "ab12");
  EXPECT_EQ(a->kind, "binary") << "a version without a kind is a flow binary's";
  auto y = decode_flow_artifact(json::parse(R"({"artifact":{"uri":"file:///n.yaml","sha256":"ab","kind":"yaml"}})"));
  ASSERT_TRUE(y) << y.status().message();
  EXPECT_EQ(y->kind, "yaml");
  struct Case {
    const char* answer;
    const char* expected;
  };
  const Case cases[] = {
      {"[]", "not a JSON object, but array"},
      {"{}", "\"artifact\" must be an object, but is missing"},
      {R"({"artifact":null})", "\"artifact\" must be an object, but is null"},
      {R"({"artifact":"file:///a"})", "\"artifact\" must be an object, but is string"},
      {R"({"artifact":{"sha256":"ab"}})", "no artifact uri"},
      {R"({"artifact":{"uri":"","sha256":"ab"}})", "no artifact uri"},
      {R"({"artifact":{"uri":7,"sha256":"ab"}})", "\"uri\" must be a string, but is number"},
      {R"({"artifact":{"uri":"file:///a"}})", "no artifact sha256"},
      {R"({"artifact":{"uri":"file:///a","sha256":null}})", "no artifact sha256"},
      {R"({"artifact":{"uri":"file:///a","sha256":[]}})", "\"sha256\" must be a string, but is array"},
      {R"({"artifact":{"uri":"file:///a","sha256":"ab","kind":1}})", "\"kind\" must be a string, but is number"},
  };
  for (const auto& c : cases) {
    auto r = decode_flow_artifact(json::parse(c.answer));
    ASSERT_FALSE(r) << c.answer;
    EXPECT_NE(r.status().message().find(c.expected), std::string::npos) << c.answer << " -> " << r.status().message();
  }
}

}  // namespace
}  // namespace culvert::runtime
